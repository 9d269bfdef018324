"""Data, model and training: NumPy logistic regression, nothing federated here.

scikit-learn's breast-cancer set (569 records, 30 features, shipped inside scikit-learn) is
shuffled with a fixed seed; 20 % is a hold-out test set for the server's central evaluation and
the centrally trained baseline. The rest is divided among the hospitals by the ``shares``
setting (different sizes, the same mix of diagnoses). Every hospital standardizes the features
with its own statistics: no statistic of its records leaves it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer

Params = list[np.ndarray]  # [weights (30,), bias (1,)], float32


@dataclass(frozen=True)
class Split:
    """Standardized features and 0/1 labels (1: benign)."""

    x: np.ndarray
    y: np.ndarray


def app_config(run_config: dict[str, Any]) -> dict[str, Any]:
    """The run config, with this app's ``[tool.flwr.app.config]`` filling in absent keys.

    ``flwr run`` and fedchain hand the app its full run config; Flower's Python entry point
    ``flwr.simulation.run_simulation`` hands it none, so the defaults come from the app's own
    pyproject.toml.
    """
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        defaults = tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["flwr"]["app"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        defaults = {}
    return {**defaults.get("config", {}), **run_config}


def _standardized(x: np.ndarray, y: np.ndarray) -> Split:
    std = x.std(axis=0)
    z = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return Split(z.astype(np.float32), y.astype(np.float32))


def _shuffled(seed: int) -> tuple[np.ndarray, np.ndarray]:
    data = load_breast_cancer()
    order = np.random.default_rng(seed).permutation(len(data.target))
    return data.data[order], data.target[order]


def pooled(seed: int) -> tuple[Split, Split]:
    """All training records (what a central trainer would pool) and the hold-out test set."""
    x, y = _shuffled(seed)
    cut = int(0.8 * len(y))
    return _standardized(x[:cut], y[:cut]), _standardized(x[cut:], y[cut:])


def hospital_data(index: int, shares: str, seed: int) -> tuple[Split, Split]:
    """Hospital ``index``'s own training and evaluation records (80/20 of its share)."""
    x, y = _shuffled(seed)
    x, y = x[: int(0.8 * len(y))], y[: int(0.8 * len(y))]
    fractions = np.asarray([float(s) for s in shares.split(",")])
    bounds = (np.cumsum(fractions) / fractions.sum() * len(y)).astype(int)
    start = 0 if index == 0 else int(bounds[index - 1])
    local_x, local_y = x[start : bounds[index]], y[start : bounds[index]]
    cut = int(0.8 * len(local_y))
    return _standardized(local_x[:cut], local_y[:cut]), _standardized(local_x[cut:], local_y[cut:])


def initial_params() -> Params:
    """Zero weights and bias: logistic regression needs no random start."""
    return [np.zeros(30, dtype=np.float32), np.zeros(1, dtype=np.float32)]


def _probabilities(params: Params, x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(x @ params[0] + params[1])))


def train(params: Params, data: Split, cfg: dict[str, Any], rng: np.random.Generator) -> float:
    """Mini-batch gradient descent on the log loss (optionally with an L2 penalty), in place;
    returns the mean log loss of the last epoch."""
    w, b = params
    l2 = float(cfg["l2"]) if cfg["penalty"] == "l2" else 0.0
    lr, batch = float(cfg["lr"]), int(cfg["batch-size"])
    loss = 0.0
    for _ in range(int(cfg["local-epochs"])):
        losses = []
        for idx in np.array_split(rng.permutation(len(data.y)), max(1, len(data.y) // batch)):
            p = _probabilities(params, data.x[idx])
            error = p - data.y[idx]
            w -= (lr * (data.x[idx].T @ error / len(idx) + l2 * w)).astype(np.float32)
            b -= np.float32(lr * error.mean())
            losses.append(log_loss(data.y[idx], p))
        loss = float(np.mean(losses))
    return loss


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean binary cross-entropy."""
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def test(params: Params, data: Split) -> tuple[float, float]:
    """Log loss and accuracy of ``params`` on ``data``."""
    p = _probabilities(params, data.x)
    return log_loss(data.y, p), float(np.mean((p > 0.5) == (data.y > 0.5)))
