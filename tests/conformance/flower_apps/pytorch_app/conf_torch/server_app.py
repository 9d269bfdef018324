"""The ServerApp: FedAvg from a seeded model; the final state dict is the result."""

from __future__ import annotations

from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from tests.conformance.flower_apps.common import save_result

from conf_torch.task import new_model

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    strategy = FedAvg(fraction_evaluate=float(cfg["fraction-evaluate"]), min_available_nodes=3,
                      min_train_nodes=3, min_evaluate_nodes=3)  # fmt: skip
    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(new_model().state_dict()),
        train_config=ConfigRecord({"lr": float(cfg["lr"])}),
        num_rounds=int(cfg["num-server-rounds"]),
    )
    save_result("FedAvg", result.arrays, evaluate=result.evaluate_metrics_clientapp)
