"""What the conformance apps share: bundled data split across organizations, and where a
ServerApp leaves its results for the test (``CONFORMANCE_OUT``, a folder given in the
environment by ``tests/conformance/test_flower_apps.py``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, MetricRecord
from sklearn.datasets import load_breast_cancer, load_digits

Split = tuple[np.ndarray, np.ndarray]


def _rows(n: int, partition: int, parts: int, per_part: int) -> np.ndarray:
    """Every ``parts``-th row from ``partition`` on, at most ``per_part`` of them."""
    return np.arange(partition, n, parts)[:per_part]


def digits(partition: int, parts: int, per_part: int = 120) -> Split:
    """Scikit-learn's bundled digits (8x8 images scaled to [0, 1]), one partition."""
    x, y = load_digits(return_X_y=True)
    rows = _rows(len(y), partition, parts, per_part)
    return (x[rows] / 16.0), y[rows]


def digits_holdout(size: int = 300) -> Split:
    """The last ``size`` digits, for a ServerApp's central evaluation."""
    x, y = load_digits(return_X_y=True)
    return x[-size:] / 16.0, y[-size:]


def breast_cancer(partition: int, parts: int) -> Split:
    """Scikit-learn's bundled breast cancer set, standardised, one partition."""
    x, y = load_breast_cancer(return_X_y=True)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    rows = _rows(len(y), partition, parts, len(y))
    return x[rows], y[rows]


def save_result(label: str, arrays: ArrayRecord | None, **metrics: Any) -> None:
    """Write the final model as ``<label>.npz`` and ``metrics`` as ``<label>.json``."""
    folder = os.environ.get("CONFORMANCE_OUT")
    if not folder:
        return
    if arrays is not None:
        np.savez(Path(folder) / f"{label}.npz", *arrays.to_numpy_ndarrays())
    (Path(folder) / f"{label}.json").write_text(json.dumps(_plain(metrics), sort_keys=True))


def _plain(value: Any) -> Any:
    """Metric records (nested in dicts by round, as in Flower's ``Result``) as JSON values."""
    if isinstance(value, MetricRecord | dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def linear_train(
    params: list[np.ndarray], x: np.ndarray, y: np.ndarray, *, lr: float, steps: int = 3
) -> tuple[list[np.ndarray], float]:
    """Least-squares gradient steps of a linear model ``x @ w + b``; the new model and the
    loss before training."""
    w, b = (p.copy() for p in params)
    loss = float(np.mean((x @ w + b - y) ** 2))
    for _ in range(steps):
        error = (x @ w + b - y) / len(y)
        w -= lr * (x.T @ error)
        b -= lr * error.sum(keepdims=True)
    return [w, b], loss
