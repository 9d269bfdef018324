"""The ClientApp: answers QUERY with its number of examples, TRAIN with a few gradient steps."""

from __future__ import annotations

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from tests.conformance.flower_apps.common import breast_cancer, linear_train

app = ClientApp()


@app.query()
def query(msg: Message, context: Context) -> Message:
    x, _ = breast_cancer(int(context.node_config["partition-id"]),
                         int(context.node_config["num-partitions"]))  # fmt: skip
    return Message(RecordDict({"size": MetricRecord({"examples": len(x)})}), reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    x, y = breast_cancer(int(context.node_config["partition-id"]),
                         int(context.node_config["num-partitions"]))  # fmt: skip
    params = msg.content["arrays"].to_numpy_ndarrays()
    new, loss = linear_train(params, x, y, lr=float(context.run_config["lr"]))
    metrics = MetricRecord({"train_loss": loss, "num-examples": len(y)})
    return Message(RecordDict({"arrays": ArrayRecord(new), "metrics": metrics}), reply_to=msg)
