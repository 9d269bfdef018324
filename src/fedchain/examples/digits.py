"""The built-in Flower app: a NumPy MLP on scikit-learn's digits, non-IID across organizations.

``client_app`` and ``server_app`` are ordinary Flower Message-API apps; fedchain runs them
(``fedchain-server --app fedchain.examples.digits:server_app``, the default). The server uses
Flower's ``FedAvg`` wrapped in :class:`fedchain.flower.LedgerStrategy`. ``secure_server_app`` and
``secure_client_app`` (``fedchain demo --secure``) train the same way with secure aggregation:
``LedgerStrategy(SecureAggregation(FedAvg))`` and ``secagg_mod`` with ledger-anchored keys.
"""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg, Strategy

from fedchain.examples.digits_data import holdout, partition
from fedchain.examples.digits_model import evaluate, init_params, train
from fedchain.flower.secagg_mod import make_secagg_mod

__all__ = ["client_app", "secure_client_app", "secure_server_app", "server_app"]

client_app = ClientApp()
server_app = ServerApp()
# The same training with secure aggregation; keys must be anchored on the ledger (G3).
secure_client_app = ClientApp(mods=[make_secagg_mod(require_anchor=True)])
secure_server_app = ServerApp()


def _local(context: Context) -> tuple[int, int, float, int]:
    cfg = context.node_config
    return (
        int(cfg.get("partition-id", 0)),
        int(cfg.get("num-partitions", 1)),
        float(cfg.get("alpha", 0.5)),
        int(cfg.get("seed", 0)),
    )


def _number(config: ConfigRecord, key: str, default: float) -> float:
    """A numeric setting of the server's ConfigRecord (``default`` if absent or not a number)."""
    value = config.get(key, default)
    return (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default
    )


@secure_client_app.train()
@client_app.train()
def train_handler(msg: Message, context: Context) -> Message:
    """Local SGD from the received global model; replies with new weights and num-examples."""
    index, parts, alpha, seed = _local(context)
    local_train, _ = partition(index, parts, alpha=alpha, seed=seed)
    config = msg.content.config_records["config"]
    rnd = _number(config, "server-round", 0)
    rng = np.random.default_rng([seed, index, int(rnd)])
    params, loss = train(
        msg.content.array_records["arrays"].to_numpy_ndarrays(),
        local_train,
        epochs=int(_number(config, "epochs", 5)),
        lr=float(_number(config, "lr", 0.2)),
        batch=int(_number(config, "batch", 32)),
        rng=rng,
    )
    metrics = MetricRecord({"train_loss": loss, "num-examples": len(local_train.y)})
    return Message(RecordDict({"arrays": ArrayRecord(params), "metrics": metrics}), reply_to=msg)


@secure_client_app.evaluate()
@client_app.evaluate()
def evaluate_handler(msg: Message, context: Context) -> Message:
    """Loss and accuracy of the global model on this organization's local test split."""
    index, parts, alpha, seed = _local(context)
    _, local_test = partition(index, parts, alpha=alpha, seed=seed)
    loss, acc = evaluate(msg.content.array_records["arrays"].to_numpy_ndarrays(), local_test)
    metrics = MetricRecord({"eval_loss": loss, "eval_acc": acc, "num-examples": len(local_test.y)})
    return Message(RecordDict({"metrics": metrics}), reply_to=msg)


@server_app.main()
def main(grid: Grid, context: Context) -> None:
    """FedAvg over every connected organization, recorded on the ledger round by round."""
    _start(grid, context, secure=False)


@secure_server_app.main()
def secure_main(grid: Grid, context: Context) -> None:
    """As :func:`main`, with secure aggregation: the aggregator only sees the masked sum."""
    _start(grid, context, secure=True)


def _start(grid: Grid, context: Context, *, secure: bool) -> None:
    from fedchain.flower.strategy import LedgerStrategy  # the Flower seam, imported lazily

    cfg = context.run_config
    orgs = int(cfg.get("min-nodes", 2))
    seed = int(cfg.get("seed", 0))
    inner: Strategy = FedAvg(
        fraction_train=1.0,
        # 0 skips federated evaluation: a round is then one exchange (benchmarks/demo_rounds.py)
        fraction_evaluate=float(cfg.get("fraction-evaluate", 1.0)),
        min_train_nodes=orgs,
        min_evaluate_nodes=orgs,
        min_available_nodes=orgs,
    )
    if secure:
        from fedchain.flower.secagg_strategy import SecureAggregation

        # No organization trains on more than the pooled training set: a safe weight bound.
        bound = int(cfg.get("max-weight", len(holdout(seed)[0].y)))
        inner = SecureAggregation(inner, max_weight=bound, metrics=("train_loss",))
    strategy = LedgerStrategy(inner, min_replies=int(cfg.get("min-replies", 1)))
    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(init_params(seed)),
        num_rounds=int(cfg.get("rounds", 10)),
        timeout=float(cfg.get("round-timeout", 120.0)),
        train_config=ConfigRecord(
            {"lr": float(cfg.get("lr", 0.2)), "epochs": int(cfg.get("epochs", 5)), "batch": 32}
        ),
    )
