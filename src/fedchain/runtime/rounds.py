"""Per-round bookkeeping on the aggregator side, and the ``close`` record built from it (G5)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedchain.ledger.canonical import MAX_SAFE_INT

__all__ = ["MAX_METRICS", "RUN_END", "RoundLog", "TaskInfo", "finite_metrics", "with_run_end"]

#: At most this many metrics go in a ledger record (the ledger's own limit).
MAX_METRICS = 64
#: The metric of a run's last ``close`` record that says the run ended: 1 when the ServerApp
#: returned, 0 when it raised. Organizations with ``--exit-when-done`` exit on it; a run that
#: carries it is not resumed.
RUN_END = "fedchain:run-end"
_METRIC_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")  # the ledger's metric names


@dataclass
class TaskInfo:
    """A task the aggregator opened: its recipients and what came of each."""

    task: str
    round: int
    type: str
    recipients: dict[str, str]  # org -> Flower message id
    deadline: float  # monotonic
    model_sha256: str | None
    payloads: set[str] = field(default_factory=set)
    announced: dict[str, dict[str, Any]] = field(default_factory=dict)  # org -> update record
    selected: list[str] | None = None

    def complete(self, wait_for: int | None) -> bool:
        """All recipients answered, or at least ``wait_for`` of them did."""
        if len(self.announced) >= len(self.recipients):
            return True
        return wait_for is not None and len(self.announced) >= wait_for


@dataclass
class RoundLog:
    """What the aggregator learned in one round; becomes the round's ``close`` record."""

    round: int
    aggregated: dict[str, str] = field(default_factory=dict)  # org -> update sha256
    dropouts: dict[str, str] = field(default_factory=dict)  # org -> stage
    rejected: dict[str, str] = field(default_factory=dict)  # org -> reason
    closed: bool = False

    def drop(self, org: str, stage: str) -> None:
        self.dropouts.setdefault(org, stage)

    def close_record(
        self, org: str, run: str, model_sha256: str | None, metrics: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The ``close`` record for this round (an org is listed once: rejected wins)."""
        dropouts = {o: s for o, s in self.dropouts.items() if o not in self.rejected}
        return {
            "v": 1,
            "kind": "close",
            "org": org,
            "run": run,
            "round": self.round,
            "model_sha256": model_sha256,
            "aggregated": [
                {"org": o, "update_sha256": h} for o, h in sorted(self.aggregated.items())
            ],
            "dropouts": [{"org": o, "stage": s} for o, s in sorted(dropouts.items())],
            "rejected": [{"org": o, "reason": r[:1000]} for o, r in sorted(self.rejected.items())],
            "metrics": finite_metrics(metrics or {}),
        }


def with_run_end(metrics: Mapping[str, float], *, failed: bool) -> dict[str, float]:
    """``metrics`` of a ``close`` record marked as the run's last (kept within the limit)."""
    kept = dict(sorted((k, v) for k, v in metrics.items() if k != RUN_END)[: MAX_METRICS - 1])
    return {**kept, RUN_END: 0 if failed else 1}


def finite_metrics(*sources: Mapping[str, Any]) -> dict[str, float]:
    """The metrics a ledger record may carry: finite numbers under ledger metric names.

    Metrics are informative, so what the ledger would refuse is left out rather than failing
    the record: spaces in names become ``_``, names are cut to 64 characters and dropped if still
    not valid; values that are not finite numbers are dropped, and ints beyond JSON's exact range
    (2^53) become floats. NumPy scalars of every kind become the Python number they hold
    (``np.float64`` is a ``float`` subclass whose ``repr`` is not a JSON number), and booleans
    (Python's or NumPy's) become 1 or 0. A later source overrides an earlier one; the first
    :data:`MAX_METRICS` names in sorted order are kept.
    """
    found: dict[str, float] = {}
    for source in sources:
        for key, value in source.items():
            name = str(key).replace(" ", "_")[:64]
            number = _ledger_number(value)
            if number is not None and _METRIC_NAME.fullmatch(name):
                found[name] = number
    return dict(sorted(found.items())[:MAX_METRICS])


def _ledger_number(value: Any) -> float | None:
    """``value`` as a plain ``int`` or ``float`` canonical JSON can carry exactly, or None."""
    if isinstance(value, np.floating):
        value = float(value)  # float16/32/64 and longdouble (whose item() stays numpy)
    elif isinstance(value, np.integer | np.bool_):
        value = value.item()  # np.int*/uint*, np.bool_: the Python value
    if isinstance(value, bool):
        return int(value)
    if not isinstance(value, int | float):
        return None
    value = int(value) if isinstance(value, int) else float(value)  # subclasses: plain
    if isinstance(value, int):
        if abs(value) <= MAX_SAFE_INT:
            return value
        try:
            value = float(value)  # a timestamp in ns, say: kept, rounded
        except OverflowError:
            return None
    return value if math.isfinite(value) else None
