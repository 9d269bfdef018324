"""The ClientApp: load the global weights, train on this organization's digits, reply."""

from __future__ import annotations

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from tests.conformance.flower_apps.common import digits

from conf_torch.task import new_model, test, train

app = ClientApp()


@app.train()
def train_fn(msg: Message, context: Context) -> Message:
    partition = int(context.node_config["partition-id"])
    x, y = digits(partition, int(context.node_config["num-partitions"]))
    model = new_model()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    server_round = int(msg.content["config"]["server-round"])
    loss = train(
        model, x, y, epochs=int(context.run_config["local-epochs"]),
        batch=int(context.run_config["batch-size"]), lr=float(msg.content["config"]["lr"]),
        seed=1000 * server_round + partition,
    )  # fmt: skip
    metrics = MetricRecord({"train_loss": loss, "num-examples": len(y)})
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics})
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate_fn(msg: Message, context: Context) -> Message:
    x, y = digits(
        int(context.node_config["partition-id"]), int(context.node_config["num-partitions"])
    )
    model = new_model()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    loss, acc = test(model, x, y)
    metrics = MetricRecord({"eval_loss": loss, "eval_acc": acc, "num-examples": len(y)})
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)
