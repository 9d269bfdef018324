"""Per-round bookkeeping on the aggregator side, and the ``close`` record built from it (G5)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RoundLog", "TaskInfo"]


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
            "metrics": _finite(metrics or {}),
        }


def _finite(metrics: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in sorted(metrics.items())[:64]:
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[str(key)] = value
    return out
