"""The hospital's side: local SGD from the global model; local evaluation."""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from selection.task import app_config, hospital_data, test, train

app = ClientApp()


@app.train()
def train_handler(msg: Message, context: Context) -> Message:
    """Local epochs from the global model; reply with the new weights and the sample count."""
    cfg = app_config(dict(context.run_config))
    index = int(context.node_config["partition-id"])
    local_train, _ = hospital_data(index, str(cfg["shares"]), int(cfg["seed"]))
    params = [a.copy() for a in msg.content["arrays"].to_numpy_ndarrays()]
    server_round = int(msg.content["config"]["server-round"])
    loss = train(
        params, local_train, cfg, np.random.default_rng([int(cfg["seed"]), index, server_round])
    )
    metrics = MetricRecord({"train_loss": loss, "num-examples": len(local_train.y)})
    content = RecordDict({"arrays": ArrayRecord(params), "metrics": metrics})
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate_handler(msg: Message, context: Context) -> Message:
    """Loss and accuracy of the global model on this hospital's evaluation images."""
    cfg = app_config(dict(context.run_config))
    index = int(context.node_config["partition-id"])
    _, local_eval = hospital_data(index, str(cfg["shares"]), int(cfg["seed"]))
    loss, accuracy = test(msg.content["arrays"].to_numpy_ndarrays(), local_eval)
    metrics = MetricRecord(
        {"eval_loss": loss, "eval_acc": accuracy, "num-examples": len(local_eval.y)}
    )
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)
