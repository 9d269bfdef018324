"""The hospital's side: local training, clipped by Flower's ``fixedclipping_mod``."""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import fixedclipping_mod

from tabular.task import app_config, hospital_data, test, train

app = ClientApp()


# The mod clips this hospital's update to the norm the DP strategy wrapper sends. It is given
# to the train handler only: Flower 1.42's fixedclipping_mod refuses evaluate messages too.
@app.train(mods=[fixedclipping_mod])
def train_handler(msg: Message, context: Context) -> Message:
    """Local epochs from the global model; reply with the new weights."""
    cfg = app_config(dict(context.run_config))
    index = int(context.node_config["partition-id"])
    local_train, _ = hospital_data(index, str(cfg["shares"]), int(cfg["seed"]))
    params = [a.copy() for a in msg.content["arrays"].to_numpy_ndarrays()]
    rng = np.random.default_rng(
        [int(cfg["seed"]), index, int(msg.content["config"]["server-round"])]
    )
    loss = train(params, local_train, cfg, rng)
    metrics = MetricRecord({"train_loss": loss, "num-examples": len(local_train.y)})
    content = RecordDict({"arrays": ArrayRecord(params), "metrics": metrics})
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate_handler(msg: Message, context: Context) -> Message:
    """Loss and accuracy of the global model on this hospital's evaluation records."""
    cfg = app_config(dict(context.run_config))
    index = int(context.node_config["partition-id"])
    _, local_eval = hospital_data(index, str(cfg["shares"]), int(cfg["seed"]))
    loss, accuracy = test(msg.content["arrays"].to_numpy_ndarrays(), local_eval)
    metrics = MetricRecord(
        {"eval_loss": loss, "eval_acc": accuracy, "num-examples": len(local_eval.y)}
    )
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)
