"""A tiny Flower app for the runtime tests: a few hundred float32 parameters, no data set.

Same shape as the built-in digits app (``FedAvg`` wrapped in ``LedgerStrategy``, the same run
config keys) but it imports neither scikit-learn nor any data, so a test process starts fast.
Each organization "trains" by moving the model a step toward its own target (derived from its
partition id), so aggregation visibly changes the model and every round has a new hash.
"""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

__all__ = ["client_app", "evaluate_handler", "init_params", "server_app", "train_handler"]

client_app = ClientApp()
server_app = ServerApp()


def init_params(seed: int = 0) -> list[np.ndarray]:
    """A 16x8 weight matrix and an 8-vector, float32."""
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(16, 8)).astype(np.float32), np.zeros(8, dtype=np.float32)]


def _target(context: Context) -> list[np.ndarray]:
    index = int(context.node_config.get("partition-id", 0))
    return [np.full((16, 8), index, np.float32), np.full(8, -index, np.float32)]


@client_app.train()
def train_handler(msg: Message, context: Context) -> Message:
    """One step toward this organization's target; 10 + partition-id examples; reports the
    ``server-round`` it was sent (so a test can see the round numbering the app sees)."""
    params = msg.content.array_records["arrays"].to_numpy_ndarrays()
    target = _target(context)
    new = [(p + 0.5 * (t - p)).astype(np.float32) for p, t in zip(params, target, strict=True)]
    loss = float(np.mean([np.mean((p - t) ** 2) for p, t in zip(params, target, strict=True)]))
    examples = 10 + int(context.node_config.get("partition-id", 0))
    sent = msg.content.config_records["config"].get("server-round", 0)
    rnd = sent if isinstance(sent, int) else 0
    metrics = MetricRecord({"train_loss": loss, "num-examples": examples, "server-round": rnd})
    return Message(RecordDict({"arrays": ArrayRecord(new), "metrics": metrics}), reply_to=msg)


@client_app.evaluate()
def evaluate_handler(msg: Message, context: Context) -> Message:
    """Distance of the global model to this organization's target."""
    params = msg.content.array_records["arrays"].to_numpy_ndarrays()
    target = _target(context)
    loss = float(np.mean([np.mean((p - t) ** 2) for p, t in zip(params, target, strict=True)]))
    metrics = MetricRecord({"eval_loss": loss, "num-examples": 5})
    return Message(RecordDict({"metrics": metrics}), reply_to=msg)


@server_app.main()
def main(grid: Grid, context: Context) -> None:
    """FedAvg over the connected organizations, recorded on the ledger round by round."""
    from fedchain.flower.strategy import LedgerStrategy

    cfg = context.run_config
    orgs = int(cfg.get("min-nodes", 2))
    inner = FedAvg(fraction_train=1.0, fraction_evaluate=1.0, min_train_nodes=orgs,
                   min_evaluate_nodes=orgs, min_available_nodes=orgs)  # fmt: skip
    strategy = LedgerStrategy(inner, min_replies=int(cfg.get("min-replies", 1)))
    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(init_params()),
        num_rounds=int(cfg.get("num-server-rounds", 3)),
        timeout=float(cfg.get("round-timeout", 60.0)),
        train_config=ConfigRecord({"lr": 0.5}),
    )
