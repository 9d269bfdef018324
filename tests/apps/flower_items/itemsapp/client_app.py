"""The ClientApp: a step toward this organization's target, with the run config it was given."""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from itemsapp.task import record, target

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Moves the model halfway to the target; reports numpy-typed metrics."""
    cfg = context.run_config
    org = str(context.node_config["org"])
    record(f"client-{org}", dict(cfg))
    index = int(context.node_config["partition-id"])
    params = msg.content.array_records["arrays"].to_numpy_ndarrays()
    goal = target(index, int(cfg["model.width"]))
    step = float(cfg["lr"]) * int(cfg["local-epochs"]) / 2
    new = [(p + step * (t - p)).astype(np.float32) for p, t in zip(params, goal, strict=True)]
    rnd = msg.content.config_records["config"].get("server-round", 0)
    if org == cfg["bad-org"] and rnd == 1:
        new[0][0, 0] = np.nan  # refused by the aggregator, handed to FedAvg as a failure
    loss = np.mean([np.mean((p - t) ** 2) for p, t in zip(params, goal, strict=True)])
    metrics = MetricRecord({"train_loss": np.float64(loss), "num-examples": 10 + index})
    return Message(RecordDict({"arrays": ArrayRecord(new), "metrics": metrics}), reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Distance of the global model to this organization's target (a numpy float64)."""
    index = int(context.node_config["partition-id"])
    params = msg.content.array_records["arrays"].to_numpy_ndarrays()
    goal = target(index, int(context.run_config["model.width"]))
    loss = np.mean([np.mean((p - t) ** 2) for p, t in zip(params, goal, strict=True)])
    metrics = MetricRecord({"eval_loss": np.float64(loss), "num-examples": 5})
    return Message(RecordDict({"metrics": metrics}), reply_to=msg)


@app.query()
def query(msg: Message, context: Context) -> Message:
    """The organization's partition id, asked by the own-loop ServerApp."""
    index = int(context.node_config["partition-id"])
    return Message(RecordDict({"answer": MetricRecord({"partition": index})}), reply_to=msg)
