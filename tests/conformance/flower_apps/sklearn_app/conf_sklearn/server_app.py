"""The ServerApp: FedAvg from a zero model (30 features, one logit)."""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from tests.conformance.flower_apps.common import save_result

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    strategy = FedAvg(min_available_nodes=3, min_train_nodes=3, min_evaluate_nodes=3)
    initial = ArrayRecord([np.zeros((1, 30)), np.zeros(1)])
    result = strategy.start(grid=grid, initial_arrays=initial,
                            num_rounds=int(context.run_config["num-server-rounds"]))  # fmt: skip
    save_result("FedAvg", result.arrays, evaluate=result.evaluate_metrics_clientapp)
