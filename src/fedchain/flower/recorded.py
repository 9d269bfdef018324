"""Every strategy on the ledger: a Flower strategy started on a ``LedgerGrid`` runs through
:class:`~fedchain.flower.strategy.LedgerStrategy`, so an unchanged app's rounds get their global
model hashes, saved models and metrics on the ledger, as a wrapped one's do.

``Strategy.start`` is the one entry point every Message-API strategy inherits (Flower's own
strategies and wrappers do not override it), so :func:`ledger_recorded` replaces it on the base
class for the time a ServerApp runs, and restores it afterwards. A strategy already wrapped in
``LedgerStrategy``, or started on another grid, runs as it is.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flwr.serverapp.strategy import Result, Strategy

from fedchain.flower.strategy import LedgerStrategy
from fedchain.runtime.grid import LedgerGrid

__all__ = ["ledger_recorded"]


@contextlib.contextmanager
def ledger_recorded(min_replies: int = 1, models_dir: Path | None = None) -> Iterator[None]:
    """Within the block, ``strategy.start(grid=LedgerGrid, ...)`` runs
    ``LedgerStrategy(strategy, min_replies=..., models_dir=...)`` instead."""
    original = Strategy.start
    signature = inspect.signature(original)

    def start(self: Strategy, *args: Any, **kwargs: Any) -> Result:
        grid = signature.bind(self, *args, **kwargs).arguments.get("grid")
        if isinstance(self, LedgerStrategy) or not isinstance(grid, LedgerGrid):
            return original(self, *args, **kwargs)
        wrapped = LedgerStrategy(self, min_replies=min_replies, models_dir=models_dir)
        return wrapped.start(*args, **kwargs)

    Strategy.start = start  # type: ignore[method-assign]
    try:
        yield
    finally:
        Strategy.start = original  # type: ignore[method-assign]
