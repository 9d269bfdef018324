"""The ServerApp: FedAvg under Flower's client-side fixed-clipping DP wrapper."""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import DifferentialPrivacyClientSideFixedClipping, FedAvg
from tests.conformance.flower_apps.common import save_result

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    np.random.seed(int(cfg["seed"]))  # the wrapper draws its noise from numpy's global RNG
    strategy = DifferentialPrivacyClientSideFixedClipping(
        FedAvg(fraction_evaluate=0.0, min_available_nodes=3, min_train_nodes=3),
        noise_multiplier=float(cfg["noise-multiplier"]),
        clipping_norm=float(cfg["clipping-norm"]),
        num_sampled_clients=3,
    )
    initial = ArrayRecord([np.zeros(30), np.zeros(1)])
    result = strategy.start(grid=grid, initial_arrays=initial,
                            num_rounds=int(cfg["num-server-rounds"]))  # fmt: skip
    save_result("DifferentialPrivacyClientSideFixedClipping", result.arrays,
                train=result.train_metrics_clientapp)  # fmt: skip
