"""ServerApp: FedAvg (train only, every node, every round) on the benchmark model, timed.

On fedchain's ``LedgerGrid`` the strategy is wrapped in ``fedchain.flower.LedgerStrategy``, as
a fedchain user would (the round's ``close`` record, the global model saved by hash); on
Flower's own grid it runs as is. Timings go to the run-config key ``timings-file`` (JSON).
"""

from __future__ import annotations

import time

from flwr.app import ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg, Strategy

from roundbench.model import initial_model
from roundbench.timing import TimedStrategy

app = ServerApp()


def _on_fedchain(grid: Grid) -> bool:
    return type(grid).__module__.startswith("fedchain.")


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run ``rounds`` rounds of FedAvg over ``min-nodes`` nodes and record the timings."""
    cfg = context.run_config
    params, rounds, nodes = int(cfg["params"]), int(cfg["rounds"]), int(cfg["min-nodes"])
    inner = FedAvg(
        fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=nodes,
        min_evaluate_nodes=0, min_available_nodes=nodes,
    )  # fmt: skip
    timed = TimedStrategy(inner)
    strategy: Strategy = timed
    if _on_fedchain(grid):
        from fedchain.flower import LedgerStrategy

        strategy = LedgerStrategy(timed, min_replies=nodes)
    start = time.time()
    strategy.start(
        grid=grid,
        initial_arrays=initial_model(params),
        num_rounds=rounds,
        timeout=float(cfg.get("round-timeout", 600.0)),
        train_config=ConfigRecord({"lr": 0.1}),
    )
    end = time.time()
    if cfg.get("timings-file"):
        system = "fedchain" if _on_fedchain(grid) else "flower"
        timed.write(
            str(cfg["timings-file"]),
            end,
            {"system": system, "params": params, "nodes": nodes, "started": start},
        )
