"""The ServerApp: each strategy of ``STRATEGIES`` in turn, from the same initial model, for
``num-server-rounds`` rounds; FedAvg also evaluates centrally (``evaluate_fn``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp import strategy as fs
from tests.conformance.flower_apps.common import digits_holdout, save_result

from conf_numpy.task import init_params, loss_and_accuracy

app = ServerApp()
NODES = 3
_N = {"min_train_nodes": NODES, "min_evaluate_nodes": NODES, "min_available_nodes": NODES}

#: Every Message-API strategy this app runs (the test checks none of Flower's is missing).
STRATEGIES: dict[str, Callable[[], fs.Strategy]] = {
    "FedAvg": lambda: fs.FedAvg(**_N),
    "FedProx": lambda: fs.FedProx(proximal_mu=0.1, **_N),
    "FedAdam": lambda: fs.FedAdam(eta=0.05, **_N),
    "FedYogi": lambda: fs.FedYogi(eta=0.05, **_N),
    "FedAdagrad": lambda: fs.FedAdagrad(eta=0.05, **_N),
    "FedAvgM": lambda: fs.FedAvgM(server_momentum=0.5, **_N),
    "Krum": lambda: fs.Krum(num_malicious_nodes=0, **_N),
    "MultiKrum": lambda: fs.MultiKrum(num_malicious_nodes=0, num_nodes_to_select=2, **_N),
    "Bulyan": lambda: fs.Bulyan(num_malicious_nodes=0, **_N),
    "FedMedian": lambda: fs.FedMedian(**_N),
    "FedTrimmedAvg": lambda: fs.FedTrimmedAvg(beta=0.2, **_N),
    "QFedAvg": lambda: fs.QFedAvg(client_learning_rate=0.5, q=0.1, **_N),
    "DifferentialPrivacyServerSideFixedClipping": lambda: (
        fs.DifferentialPrivacyServerSideFixedClipping(
            fs.FedAvg(**_N), noise_multiplier=0.05, clipping_norm=2.0, num_sampled_clients=NODES
        )
    ),
    "DifferentialPrivacyServerSideAdaptiveClipping": lambda: (
        fs.DifferentialPrivacyServerSideAdaptiveClipping(
            fs.FedAvg(**_N),
            noise_multiplier=0.05,
            num_sampled_clients=NODES,
            initial_clipping_norm=2.0,
        )
    ),
}


def central_evaluation(server_round: int, arrays: ArrayRecord) -> MetricRecord:
    """Loss and accuracy of the global model on a hold-out set (``evaluate_fn``)."""
    loss, acc = loss_and_accuracy(arrays.to_numpy_ndarrays(), *digits_holdout())
    return MetricRecord({"loss": loss, "accuracy": acc})


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    names = list(STRATEGIES) if cfg["strategies"] == "all" else str(cfg["strategies"]).split(",")
    np.random.seed(
        int(cfg["seed"])
    )  # Flower's DP wrappers draw their noise from numpy's global RNG
    for name in names:
        result = STRATEGIES[name]().start(
            grid=grid,
            initial_arrays=ArrayRecord(init_params(int(cfg["seed"]))),
            num_rounds=int(cfg["num-server-rounds"]),
            train_config=ConfigRecord({"lr": float(cfg["lr"])}),
            evaluate_fn=central_evaluation if name == "FedAvg" else None,
        )
        save_result(name, result.arrays, central=result.evaluate_metrics_serverapp)
