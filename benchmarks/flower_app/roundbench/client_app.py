"""ClientApp: "training" returns the received arrays plus a constant and times itself.

The reply's MetricRecord carries ``compute-s`` (the handler's own duration: decoding the
arrays, the addition, building the reply), the wall-clock instants ``t-in`` / ``t-out`` at
which the handler started and finished, and the node's ``partition-id``, so the benchmark can
subtract the compute from the round's wall time and place each handler on a timeline with the
runtime's events.
"""

from __future__ import annotations

import time

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

app = ClientApp()

DELTA = np.float32(1e-3)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Add ``DELTA`` to every array; reply with the result, one example, and timings."""
    t_in, start = time.time(), time.perf_counter()
    received = msg.content.array_records["arrays"]
    updated = ArrayRecord(
        array_dict={key: Array(array.numpy() + DELTA) for key, array in received.items()}
    )
    compute = time.perf_counter() - start
    metrics = MetricRecord(
        {
            "num-examples": 1,
            "compute-s": compute,
            "t-in": t_in,
            "t-out": time.time(),
            "partition-id": int(context.node_config.get("partition-id", -1)),
        }
    )
    return Message(RecordDict({"arrays": updated, "metrics": metrics}), reply_to=msg)
