"""ClientApps that misbehave on purpose, for the failure and bad-input tests of the runtime.

Each wraps the tiny test app (:mod:`tests.apps.tiny`) and changes one thing in a
chosen round (the ``server-round`` of the train config). Apps that need the test to act at a
precise moment print one JSON event line (``{"event": "app", ...}``) on stdout, next to the
client's own ``--json`` events, so the test synchronises on the process's output.

Run them with ``fedchain-client --app tests.apps.misbehaving:<name>`` and the repository root
on ``PYTHONPATH``.
"""

from __future__ import annotations

import io
import json
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from tests.apps import tiny

__all__ = [
    "BAD_METADATA", "bad_arrays", "bad_metadata", "echo", "gated", "hang_in_round_2",
    "replay_then_oversize",
]

Mutation = Callable[[Message, Message, int], Message]


def _say(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps({"event": "app", **event}) + "\n")
    sys.stdout.flush()


def _round(msg: Message) -> int:
    value = msg.content.config_records["config"].get("server-round", 0)
    return value if isinstance(value, int) else 0


def _wrapping(mutate: Mutation) -> ClientApp:
    """The tiny app whose train replies go through ``mutate(reply, msg, round)``."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        rnd = _round(msg)
        return mutate(tiny.train_handler(msg, context), msg, rnd)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        return tiny.evaluate_handler(msg, context)

    return app


def _with_arrays(reply: Message, msg: Message, arrays: list[np.ndarray]) -> Message:
    content = RecordDict({"arrays": ArrayRecord(arrays), "metrics": reply.content["metrics"]})
    return Message(content, reply_to=msg)


# -- dies: the test kills the process while it trains in round 2 ------------------------------


def _hang(reply: Message, msg: Message, rnd: int) -> Message:
    if rnd == 2:
        _say({"state": "training", "round": rnd})
        threading.Event().wait()  # "training" until the test kills the process (kill -9)
    return reply


hang_in_round_2 = _wrapping(_hang)


# -- gated: waits once, in round $TEST_GATE_ROUND (default 2), for a line on its stdin ---------


class _Gate:
    def __init__(self) -> None:
        self.passed = False

    def __call__(self, reply: Message, msg: Message, rnd: int) -> Message:
        if rnd == int(os.environ.get("TEST_GATE_ROUND", "2")) and not self.passed:
            self.passed = True
            _say({"state": "waiting", "round": rnd})
            sys.stdin.readline()  # the test lets it go on at the moment it chooses
        return reply


gated = _wrapping(_Gate())


# -- malformed replies: one defect per round ---------------------------------------------------


def _defect(reply: Message, msg: Message, rnd: int) -> Message:
    """Round 1: NaN; round 2: a wrong shape; round 3: a wrong dtype; round 4: Inf."""
    arrays = [a.copy() for a in reply.content.array_records["arrays"].to_numpy_ndarrays()]
    if rnd == 1:
        arrays[0][0, 0] = np.nan
    elif rnd == 2:
        arrays[0] = arrays[0][:-1]
    elif rnd == 3:
        arrays[1] = arrays[1].astype(np.float64)
    elif rnd == 4:
        arrays[1][0] = np.inf
    return _with_arrays(reply, msg, arrays)


bad_arrays = _wrapping(_defect)


# -- malformed metadata, records and array bytes: one defect per round (issue 12, 1 and 2) ------


def _npy(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, values, allow_pickle=False)
    return buffer.getvalue()


def _declared_float32(values: np.ndarray) -> Array:
    """An array declared float32 (its shape as given) whose ``.npy`` bytes hold ``values``."""
    return Array(dtype="float32", shape=values.shape, stype="numpy.ndarray", data=_npy(values))


def _content(reply: Message, **changes: Any) -> RecordDict:
    """The honest reply's records with some replaced (a None value removes a record)."""
    records = {**dict(reply.content.items()), **changes}
    return RecordDict({k: v for k, v in records.items() if v is not None})


def _metrics(reply: Message, **changes: Any) -> MetricRecord:
    metrics = dict(reply.content["metrics"].items())
    metrics.update(changes)
    return MetricRecord({k: v for k, v in metrics.items() if v is not None})


def _weight(value: Any) -> Callable[[Message], RecordDict]:
    return lambda r: _content(r, metrics=_metrics(r, **{"num-examples": value}))


def _complex(reply: Message) -> RecordDict:
    arrays = reply.content["arrays"]
    fake = arrays["0"].numpy().astype(np.complex64)
    fake[0, 0] = complex(np.nan, 1.0)
    return _content(reply, arrays=ArrayRecord({"0": _declared_float32(fake), "1": arrays["1"]}))


def _wider(reply: Message) -> RecordDict:
    arrays = reply.content["arrays"]
    fake = _declared_float32(arrays["1"].numpy().astype(np.float64))
    return _content(reply, arrays=ArrayRecord({"0": arrays["0"], "1": fake}))


#: The defect of each round (``server-round``), as the reason the aggregator should record.
BAD_METADATA: dict[int, tuple[str, Callable[[Message], RecordDict]]] = {
    1: ("num-examples nan is not an integer", _weight(float("nan"))),
    2: ("num-examples inf is not an integer", _weight(float("inf"))),
    3: (r"num-examples -11 is not in \[1, 2\^53 - 1\]", _weight(-11)),
    4: ("the reply has no num-examples", _weight(None)),
    5: (r"num-examples \[11\] is not an integer", _weight([11])),
    6: ("differ from the other replies'", lambda r: _content(r, metrics=_metrics(r, extra=1.0))),
    7: ("metric 'train_loss' is a list",
        lambda r: _content(r, metrics=_metrics(r, train_loss=[1.0, 2.0]))),
    8: ("2 MetricRecord", lambda r: _content(r, more=MetricRecord({"num-examples": 11}))),
    9: ("2 ArrayRecord", lambda r: _content(r, copy=r.content["arrays"])),
    10: ("0 ArrayRecord", lambda r: _content(r, arrays=None)),
    11: ("array 0: its bytes hold complex64 values, not float32", _complex),
    12: ("array 1: its bytes hold float64 values, not float32", _wider),
}  # fmt: skip


def _bad_metadata(reply: Message, msg: Message, rnd: int) -> Message:
    if rnd in BAD_METADATA:
        return Message(BAD_METADATA[rnd][1](reply), reply_to=msg)
    return reply


bad_metadata = _wrapping(_bad_metadata)


# -- replay and size -------------------------------------------------------------------------


class _ReplayThenOversize:
    """Round 1: honest (the reply is kept); round 2: the round-1 reply again (a replay);
    round 3: a reply padded far over the aggregator's payload limit; later: honest."""

    def __init__(self) -> None:
        self.first: Message | None = None

    def __call__(self, reply: Message, msg: Message, rnd: int) -> Message:
        if rnd == 1:
            self.first = reply
        elif rnd == 2 and self.first is not None:
            return self.first  # answers round 1's task, byte for byte
        elif rnd == 3:
            padding = ArrayRecord({"padding": Array(np.zeros(1 << 20, dtype=np.float32))})
            reply.content["padding"] = padding
        return reply


replay_then_oversize = _wrapping(_ReplayThenOversize())


# -- echo: a cheap app for tests that drive the aggregator side themselves ---------------------

echo = ClientApp()


@echo.train()
def _echo_train(msg: Message, context: Context) -> Message:
    """Send the received model back unchanged."""
    _say({"state": "ran", "org": context.node_config.get("org"), "id": msg.metadata.message_id})
    arrays = msg.content["arrays"]
    metrics = MetricRecord({"num-examples": 1})
    return Message(RecordDict({"arrays": arrays, "metrics": metrics}), reply_to=msg)
