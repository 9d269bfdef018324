"""The coordinator's side: plain FedAvg. Which updates it receives is the runtime's choice:
fedchain's selection policy picks them from the ledger's metadata before any is transferred."""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from selection.task import app_config, initial_params, pooled, test

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run ``num-server-rounds`` rounds of FedAvg and save the final model."""
    cfg = app_config(dict(context.run_config))
    nodes, seed = int(cfg["min-nodes"]), int(cfg["seed"])
    _, holdout = pooled(seed)

    def central_evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        loss, accuracy = test(arrays.to_numpy_ndarrays(), holdout)
        return MetricRecord({"central_loss": loss, "central_acc": accuracy})

    strategy = FedAvg(min_train_nodes=nodes, min_evaluate_nodes=nodes, min_available_nodes=nodes)
    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(initial_params(int(cfg["hidden"]), seed)),
        num_rounds=int(cfg["num-server-rounds"]),
        evaluate_fn=central_evaluate,
    )
    np.savez(str(cfg["final-model"]), *result.arrays.to_numpy_ndarrays())
