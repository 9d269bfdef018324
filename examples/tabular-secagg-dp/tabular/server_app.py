"""The coordinator's side: FedAvg inside Flower's central-DP wrapper (client-side clipping).

Secure aggregation is not in the app: ``fedchain-server --secure`` wraps whatever strategy the
app starts, so the same app runs in Flower's simulation (plain sums) and on fedchain (masked).
"""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import DifferentialPrivacyClientSideFixedClipping, FedAvg

from tabular.task import app_config, initial_params, pooled, test

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run ``num-server-rounds`` rounds and save the final model."""
    cfg = app_config(dict(context.run_config))
    nodes = int(cfg["min-nodes"])
    _, holdout = pooled(int(cfg["seed"]))

    def central_evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        loss, accuracy = test(arrays.to_numpy_ndarrays(), holdout)
        return MetricRecord({"central_loss": loss, "central_acc": accuracy})

    fedavg = FedAvg(min_train_nodes=nodes, min_evaluate_nodes=nodes, min_available_nodes=nodes)
    strategy = DifferentialPrivacyClientSideFixedClipping(
        fedavg,
        noise_multiplier=float(cfg["noise-multiplier"]),
        clipping_norm=float(cfg["clipping-norm"]),
        num_sampled_clients=nodes,
    )
    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(initial_params()),
        num_rounds=int(cfg["num-server-rounds"]),
        evaluate_fn=central_evaluate,
    )
    np.savez(str(cfg["final-model"]), *result.arrays.to_numpy_ndarrays())
