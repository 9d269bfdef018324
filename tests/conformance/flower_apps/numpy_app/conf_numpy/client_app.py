"""The ClientApp: local gradient descent on this organization's digits."""

from __future__ import annotations

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from tests.conformance.flower_apps.common import digits

from conf_numpy.task import loss_and_accuracy, train

app = ClientApp()


@app.train()
def fit(msg: Message, context: Context) -> Message:
    x, y = digits(
        int(context.node_config["partition-id"]), int(context.node_config["num-partitions"])
    )
    params = msg.content.array_records["arrays"].to_numpy_ndarrays()
    config = msg.content.config_records["config"]
    loss, _ = loss_and_accuracy(params, x, y)
    new = train(
        params,
        x,
        y,
        epochs=int(context.run_config["local-epochs"]),
        lr=float(config["lr"]),
        mu=float(config.get("proximal-mu", 0.0)),
    )
    metrics = MetricRecord({"train_loss": loss, "num-examples": len(y)})
    return Message(RecordDict({"arrays": ArrayRecord(new), "metrics": metrics}), reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    x, y = digits(
        int(context.node_config["partition-id"]), int(context.node_config["num-partitions"])
    )
    params = msg.content.array_records["arrays"].to_numpy_ndarrays()
    loss, acc = loss_and_accuracy(params, x, y)
    metrics = MetricRecord({"eval_loss": loss, "eval_acc": acc, "num-examples": len(y)})
    return Message(RecordDict({"metrics": metrics}), reply_to=msg)
