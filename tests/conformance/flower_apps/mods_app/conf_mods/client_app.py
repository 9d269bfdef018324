"""The ClientApp with two mods: its own (counts the messages it saw, in ``context.state``) and
Flower's ``fixedclipping_mod`` (clips the update for the client-side DP wrapper)."""

from __future__ import annotations

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import fixedclipping_mod
from flwr.clientapp.typing import ClientAppCallable
from tests.conformance.flower_apps.common import breast_cancer, linear_train


def count_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Count the messages this node handled (state kept across rounds)."""
    seen = context.state.config_records.setdefault("count-mod", ConfigRecord({"seen": 0}))
    seen["seen"] = int(seen["seen"]) + 1
    return call_next(msg, context)


app = ClientApp(mods=[count_mod, fixedclipping_mod])


@app.train()
def train(msg: Message, context: Context) -> Message:
    x, y = breast_cancer(int(context.node_config["partition-id"]),
                         int(context.node_config["num-partitions"]))  # fmt: skip
    params = msg.content["arrays"].to_numpy_ndarrays()
    new, loss = linear_train(params, x, y, lr=float(context.run_config["lr"]))
    seen = int(context.state.config_records["count-mod"]["seen"])
    metrics = MetricRecord({"train_loss": loss, "seen": seen, "num-examples": len(y)})
    return Message(RecordDict({"arrays": ArrayRecord(new), "metrics": metrics}), reply_to=msg)
