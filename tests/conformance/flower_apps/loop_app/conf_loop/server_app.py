"""The ServerApp, no strategy: each round (numbered 0, 1, ...) asks every node its size
(QUERY), trains on every node, and averages the models weighted by those sizes."""

from __future__ import annotations

import time

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, RecordDict
from flwr.serverapp import Grid, ServerApp
from tests.conformance.flower_apps.common import save_result

app = ServerApp()
NODES = 3


def _nodes(grid: Grid, count: int) -> list[int]:
    """The nodes, once ``count`` are connected (polling, as Flower's strategies wait)."""
    while len(nodes := sorted(grid.get_node_ids())) < count:
        time.sleep(0.2)
    return nodes


@app.main()
def main(grid: Grid, context: Context) -> None:
    arrays = ArrayRecord([np.zeros(30), np.zeros(1)])
    nodes = _nodes(grid, NODES)
    for number in range(int(context.run_config["num-server-rounds"])):
        asked = [grid.create_message(RecordDict(), "query", n, str(number)) for n in nodes]
        sizes = {
            r.metadata.src_node_id: float(r.content["size"]["examples"])
            for r in grid.send_and_receive(asked)
        }
        content = RecordDict({"arrays": arrays, "config": ConfigRecord({"round": number})})
        sent = [grid.create_message(content, "train", n, str(number)) for n in nodes]
        answers = list(grid.send_and_receive(sent))
        failed = [r.error.reason for r in answers if r.has_error()]
        if failed or len(answers) != len(nodes):
            raise RuntimeError(f"{len(answers)} replies of {len(nodes)}; failures: {failed}")
        replies = answers
        weights = np.array([sizes[r.metadata.src_node_id] for r in replies])
        models = [r.content["arrays"].to_numpy_ndarrays() for r in replies]
        arrays = ArrayRecord([
            sum(w * m[i] for w, m in zip(weights, models, strict=True)) / weights.sum()
            for i in range(2)
        ])  # fmt: skip
    save_result("own-loop", arrays)
