"""Put this folder on ``PYTHONPATH`` and the interpreter looks like a plain ``pip install
fedchain``, without the ``[fabric]`` extra.

Python imports ``sitecustomize`` at start-up (from ``PYTHONPATH`` before site-packages). This one
installs a finder that claims ``fabric_protos`` (the extra's only package) does not exist, so
importing it raises the very ``ModuleNotFoundError`` (same message, same ``name``) that an install
without the extra raises. Nothing else changes, and child processes inherit it.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

EXTRA_PACKAGE = "fabric_protos"


class WithoutFabricExtra(importlib.abc.MetaPathFinder):
    """Finds nothing for ``fabric_protos`` and its submodules, and stops the search there."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] == EXTRA_PACKAGE:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


sys.meta_path.insert(0, WithoutFabricExtra())
