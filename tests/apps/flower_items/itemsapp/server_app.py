"""The ServerApp, by ``mode``: Flower's FedAvg unchanged (not wrapped in anything of fedchain's),
its own loop numbering rounds 0, 2, 4, ... with QUERY and TRAIN messages, or a failure after
its first round."""

from __future__ import annotations

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from itemsapp.task import init_params, record

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    record("server", dict(cfg))
    rounds, nodes = int(cfg["num-server-rounds"]), int(cfg["min-nodes"])
    arrays = ArrayRecord(init_params(int(cfg["model.width"])))
    if cfg["mode"] == "own-loop":
        _own_loop(grid, arrays, rounds)
        return
    strategy = FedAvg(min_train_nodes=nodes, min_evaluate_nodes=nodes, min_available_nodes=nodes)
    if cfg["mode"] == "raise":
        strategy.start(grid=grid, initial_arrays=arrays, num_rounds=1)
        raise IndexError("the app failed after its first round")
    strategy.start(grid=grid, initial_arrays=arrays, num_rounds=rounds)


def _own_loop(grid: Grid, arrays: ArrayRecord, rounds: int) -> None:
    """``rounds`` rounds numbered 0, 2, 4, ...: ask every node, then train on every node."""
    for number in range(0, 2 * rounds, 2):
        ids = sorted(grid.get_node_ids())
        asked = [grid.create_message(RecordDict(), "query", node, str(number)) for node in ids]
        answers = list(grid.send_and_receive(asked))
        assert len(answers) == len(ids), "every node answers the query"
        content = RecordDict({"arrays": arrays, "config": ConfigRecord({"server-round": number})})
        sent = [grid.create_message(content, "train", node, str(number)) for node in ids]
        replies: list[Message] = [r for r in grid.send_and_receive(sent) if r.has_content()]
        models = [r.content.array_records["arrays"].to_numpy_ndarrays() for r in replies]
        arrays = ArrayRecord([sum(layer) / len(models) for layer in zip(*models, strict=True)])
