"""The coordinator's side: FedAvg over the hospitals, evaluated centrally on held-out images."""

from __future__ import annotations

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from hospitals.task import app_config, new_model, pooled, test

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run ``num-server-rounds`` rounds of FedAvg and save the final model."""
    cfg = app_config(dict(context.run_config))
    seed, nodes = int(cfg["seed"]), int(cfg["min-nodes"])
    _, holdout = pooled(seed)

    def central_evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        model = new_model(seed)
        model.load_state_dict(arrays.to_torch_state_dict())
        loss, accuracy = test(model, holdout)
        return MetricRecord({"central_loss": loss, "central_acc": accuracy})

    strategy = FedAvg(
        fraction_train=float(cfg["fraction-train"]),
        fraction_evaluate=float(cfg["fraction-evaluate"]),
        min_train_nodes=nodes,
        min_evaluate_nodes=nodes,
        min_available_nodes=nodes,
    )
    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(new_model(seed).state_dict()),
        train_config=ConfigRecord({"lr": float(cfg["lr"])}),
        num_rounds=int(cfg["num-server-rounds"]),
        evaluate_fn=central_evaluate,
    )
    torch.save(result.arrays.to_torch_state_dict(), str(cfg["final-model"]))
