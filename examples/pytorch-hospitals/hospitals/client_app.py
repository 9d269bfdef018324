"""The hospital's side: train the received model on local images, evaluate it locally."""

from __future__ import annotations

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from hospitals.task import Split, app_config, hospital_data, new_model, test, train

app = ClientApp()


def _local_data(context: Context) -> tuple[Split, Split]:
    cfg = app_config(dict(context.run_config))
    index = int(context.node_config["partition-id"])
    parts = int(context.node_config["num-partitions"])
    return hospital_data(index, parts, float(cfg["alpha"]), int(cfg["seed"]))


@app.train()
def train_handler(msg: Message, context: Context) -> Message:
    """Local epochs of SGD from the global model; reply with the new weights."""
    cfg = app_config(dict(context.run_config))
    (train_x, train_y), _ = _local_data(context)
    model = new_model(0)
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    server_round = int(msg.content["config"]["server-round"])
    partition = int(context.node_config["partition-id"])
    loss = train(
        model,
        (train_x, train_y),
        epochs=int(cfg["local-epochs"]),
        lr=float(msg.content["config"]["lr"]),
        batch=int(cfg["batch-size"]),
        seed=int(cfg["seed"]) * 1000 + partition * 100 + server_round,
    )
    metrics = MetricRecord({"train_loss": loss, "num-examples": len(train_y)})
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics})
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate_handler(msg: Message, context: Context) -> Message:
    """Loss and accuracy of the global model on this hospital's evaluation images."""
    _, (eval_x, eval_y) = _local_data(context)
    model = new_model(0)
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    loss, accuracy = test(model, (eval_x, eval_y))
    metrics = MetricRecord({"eval_loss": loss, "eval_acc": accuracy, "num-examples": len(eval_y)})
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)
