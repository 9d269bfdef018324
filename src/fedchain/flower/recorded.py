"""Every strategy on the ledger: a Flower strategy started on a ``LedgerGrid`` runs through
:class:`~fedchain.flower.strategy.LedgerStrategy`, so an unchanged app's rounds get their global
model hashes, saved models and metrics on the ledger, as a wrapped one's do.

``Strategy.start`` is the one entry point every Message-API strategy inherits (Flower's own
strategies and wrappers do not override it), so :func:`ledger_recorded` replaces it on the base
class for the time a ServerApp runs, and restores it afterwards. A strategy already wrapped in
``LedgerStrategy``, or started on another grid, runs as it is.

With ``secure_max_weight`` (``fedchain-server --secure``) the strategy also runs inside
:class:`~fedchain.flower.secagg_strategy.SecureAggregation`: an unchanged app gets secure
aggregation, and a strategy that needs individual updates is refused with ``ConfigError``.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flwr.serverapp.strategy import Result, Strategy

from fedchain.errors import ConfigError
from fedchain.flower.secagg_strategy import SecureAggregation
from fedchain.flower.strategy import LedgerStrategy
from fedchain.runtime.grid import LedgerGrid

__all__ = ["ledger_recorded"]


@contextlib.contextmanager
def ledger_recorded(
    min_replies: int = 1, models_dir: Path | None = None, secure_max_weight: int | None = None
) -> Iterator[None]:
    """Within the block, ``strategy.start(grid=LedgerGrid, ...)`` runs
    ``LedgerStrategy(strategy, min_replies=..., models_dir=...)`` instead (around
    ``SecureAggregation(strategy, max_weight=secure_max_weight)`` when that is given)."""
    original = Strategy.start
    signature = inspect.signature(original)

    def start(self: Strategy, *args: Any, **kwargs: Any) -> Result:
        grid = signature.bind(self, *args, **kwargs).arguments.get("grid")
        if not isinstance(grid, LedgerGrid):
            return original(self, *args, **kwargs)
        if isinstance(self, LedgerStrategy):
            if secure_max_weight is not None and not isinstance(self.inner, SecureAggregation):
                raise ConfigError("--secure: the app wraps its strategy in LedgerStrategy "
                                  "itself; wrap the inner strategy in SecureAggregation there")
            return original(self, *args, **kwargs)
        inner = self
        if secure_max_weight is not None and not isinstance(self, SecureAggregation):
            inner = SecureAggregation(self, max_weight=secure_max_weight)
        wrapped = LedgerStrategy(inner, min_replies=min_replies, models_dir=models_dir)
        return wrapped.start(*args, **kwargs)

    Strategy.start = start  # type: ignore[method-assign]
    try:
        yield
    finally:
        Strategy.start = original  # type: ignore[method-assign]
