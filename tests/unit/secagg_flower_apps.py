"""Small real Flower apps for the secure-aggregation integration tests (no mocks).

``toy_app`` trains deterministically: node ``n`` in round ``r`` replies with the received model
plus a fixed random step, weight ``10 + n`` and metric ``loss = n / 10``, so plain FedAvg and
the secure wrapper can be compared exactly (within the quantization bound).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable, Mod
from flwr.serverapp.strategy import FedAvg, Strategy

from fedchain.errors import RuleViolation
from fedchain.flower import LocalGrid, anchored
from fedchain.flower.secagg_codec import secagg_record
from fedchain.secagg import PublicKeys, error_bound

NODES = (11, 12, 13, 14, 15)
MAX_WEIGHT = 64


def model(seed: int = 0) -> ArrayRecord:
    """A two-array float32 model."""
    rng = np.random.default_rng(seed)
    return ArrayRecord({"w": Array(rng.normal(0, 1, (20, 30)).astype(np.float32)),
                        "b": Array(np.zeros(30, dtype=np.float32))})


def step(node: int, rnd: int, arrays: ArrayRecord) -> ArrayRecord:
    """What node ``node`` replies in round ``rnd`` (deterministic)."""
    rng = np.random.default_rng([node, rnd])
    return ArrayRecord({key: Array((a.numpy() + rng.normal(0, 0.5, a.shape)).astype(a.dtype))
                        for key, a in arrays.items()})


def toy_app(mods: Sequence[Mod] = (), *, fail: Callable[[Message, Context], bool] | None = None
            ) -> ClientApp:
    """The toy ClientApp with ``mods``; ``fail(msg, ctx)`` makes its train handler raise."""
    app = ClientApp(mods=list(mods))

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        if fail is not None and fail(msg, context):
            raise RuntimeError("this organization's training crashed")
        rnd = int(msg.content.config_records["config"]["server-round"])  # type: ignore[arg-type]
        arrays = step(context.node_id, rnd, msg.content.array_records["arrays"])
        metrics = MetricRecord({"num-examples": 10 + context.node_id % 50,
                                "loss": context.node_id / 10})
        return Message(RecordDict({"arrays": arrays, "metrics": metrics}), reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        metrics = MetricRecord({"acc": context.node_id / 100, "num-examples": 5})
        return Message(RecordDict({"metrics": metrics}), reply_to=msg)

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        return Message(msg.content, reply_to=msg)

    return app


def grid_of(app: ClientApp, nodes: Sequence[int] = NODES, **kwargs: object) -> LocalGrid:
    """A LocalGrid running ``app`` on every node."""
    return LocalGrid(dict.fromkeys(nodes, app), **kwargs)  # type: ignore[arg-type]


def fedavg(n: int = len(NODES)) -> Strategy:
    """FedAvg that trains and evaluates on all ``n`` nodes."""
    return FedAvg(min_available_nodes=n, min_train_nodes=n, min_evaluate_nodes=n)


def tolerance(n: int, total_weight: int, clip: float = 8.0) -> float:
    """Per-coordinate bound on |secure mean - plain mean| (quantization + float32 rounding)."""
    return error_bound(n, clip, MAX_WEIGHT) / total_weight + 4 * clip * 2.0**-24


def max_diff(a: ArrayRecord, b: ArrayRecord) -> float:
    """Largest absolute difference between two array records with the same keys."""
    assert list(a.keys()) == list(b.keys())
    return max(float(np.abs(a[k].numpy().astype(np.float64) - b[k].numpy()).max()) for k in a)


class BoardAnchor:
    """A :class:`~fedchain.flower.anchor.KeyAnchor` over a shared in-memory board: the ledger
    of one process (tests on a LocalGrid). A task is ``"<round>:<stage kind>"``."""

    def __init__(self, board: dict[str, dict[int, PublicKeys]], node: int, msg: Message) -> None:
        self.board, self.node = board, node
        record = secagg_record(msg.content) if msg.has_content() else None
        self._round = int(msg.metadata.group_id or 0)
        kind = str(record["kind"]) if record else msg.metadata.message_type
        self._task = f"{self._round}:{kind}"

    @property
    def task(self) -> str:
        return self._task

    @property
    def round(self) -> int:
        return self._round

    def publish_keys(self, keys: PublicKeys) -> None:
        published = self.board.setdefault(self._task, {})
        if self.node in published:
            raise RuleViolation("keys.duplicate", f"{self.node} already published keys")
        published[self.node] = keys

    def trusted_keys(self, task: str) -> Mapping[int, PublicKeys]:
        return dict(self.board.get(task, {}))


def anchor_mod(board: dict[str, dict[int, PublicKeys]]) -> Mod:
    """A mod (placed before ``secagg_mod``) that anchors keys on ``board``, as the runtime does
    with the ledger."""

    def mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
        with anchored(BoardAnchor(board, context.node_id, msg)):
            return call_next(msg, context)

    return mod
