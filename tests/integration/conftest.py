"""Fixtures of the runtime integration tests (processes: see ``runtime_support``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.runtime_support import Deployment


@pytest.fixture
def deployment(consortium_dir: Path, tmp_path: Path) -> Iterator[Deployment]:
    """The session consortium (read-only), a fresh ledger/models folder; processes killed after."""
    dep = Deployment(pki=consortium_dir, workdir=tmp_path)
    try:
        yield dep
    finally:
        dep.stop_all()
