"""The ClientApp: scikit-learn's LogisticRegression, warm-started from the global model."""

from __future__ import annotations

import warnings

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from tests.conformance.flower_apps.common import breast_cancer

app = ClientApp()


def _model(msg: Message, context: Context) -> LogisticRegression:
    cfg = context.run_config
    model = LogisticRegression(
        penalty=str(cfg["penalty"]),
        max_iter=int(cfg["local-epochs"]),
        fit_intercept=bool(cfg["fit-intercept"]),
        warm_start=True,
    )
    coef, intercept = msg.content["arrays"].to_numpy_ndarrays()
    model.classes_ = np.array([0, 1])
    model.coef_, model.intercept_ = coef.copy(), intercept.copy()
    return model


def _data(context: Context) -> tuple[np.ndarray, np.ndarray]:
    return breast_cancer(int(context.node_config["partition-id"]),
                         int(context.node_config["num-partitions"]))  # fmt: skip


@app.train()
def train(msg: Message, context: Context) -> Message:
    x, y = _data(context)
    model = _model(msg, context)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    metrics = MetricRecord({"train_loss": log_loss(y, model.predict_proba(x)),
                            "num-examples": len(y)})  # fmt: skip
    arrays = ArrayRecord([model.coef_, model.intercept_])
    return Message(RecordDict({"arrays": arrays, "metrics": metrics}), reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    x, y = _data(context)
    model = _model(msg, context)
    metrics = MetricRecord({"eval_loss": log_loss(y, model.predict_proba(x)),
                            "eval_acc": model.score(x, y), "num-examples": len(y)})  # fmt: skip
    return Message(RecordDict({"metrics": metrics}), reply_to=msg)
