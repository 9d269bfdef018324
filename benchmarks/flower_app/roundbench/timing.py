"""``TimedStrategy``: wrap a Flower strategy and record when each round's phases happen.

Per round it records the wall-clock instant the strategy configured the round (``start``), the
instant the replies reached ``aggregate_train`` (``received``) and the instant aggregation
finished (``aggregated``), plus each reply's own ``compute-s`` / ``t-in`` / ``t-out`` metrics.
A round's wall time is the next round's ``start`` minus its own (the last round ends when the
strategy returns), so everything the runtime does between rounds counts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

_REPLY_KEYS = ("compute-s", "t-in", "t-out", "partition-id")


class TimedStrategy(Strategy):
    """Delegates everything to ``inner``; records timestamps in ``self.rounds``."""

    def __init__(self, inner: Strategy) -> None:
        self.inner = inner
        self.rounds: dict[int, dict[str, Any]] = {}

    def summary(self) -> None:
        self.inner.summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self.rounds[server_round] = {"round": server_round, "start": time.time()}
        return self.inner.configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        received = time.time()
        replies = list(replies)
        row = self.rounds.setdefault(server_round, {"round": server_round})
        row["received"] = received
        row["replies"] = [_reply_timings(reply) for reply in replies]
        result = self.inner.aggregate_train(server_round, replies)
        row["aggregated"] = time.time()
        return result

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return self.inner.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        return self.inner.aggregate_evaluate(server_round, replies)

    def write(self, path: str, end: float, extra: dict[str, Any]) -> None:
        """Write the rounds (and ``end``, when the last round finished) to ``path`` as JSON."""
        target = Path(path)
        tmp = target.with_suffix(".tmp")
        rows = [self.rounds[r] for r in sorted(self.rounds)]
        tmp.write_text(json.dumps({**extra, "end": end, "rounds": rows}))
        tmp.replace(target)


def _reply_timings(reply: Message) -> dict[str, Any]:
    if reply.has_error():
        return {"error": reply.error.reason}
    found: dict[str, Any] = {}
    for record in reply.content.metric_records.values():
        found.update({k: record[k] for k in _REPLY_KEYS if k in record})
    return found
