"""Data, model and training: a NumPy multilayer perceptron, nothing federated here.

scikit-learn's digits (1,797 8x8 images, shipped inside scikit-learn) are shuffled with a fixed
seed; 20 % is a hold-out test set for the server's central evaluation and the centrally
trained baseline. The rest is divided among the hospitals by the ``shares`` setting, so their
sample counts (which they announce on the ledger) differ.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_digits

Params = list[np.ndarray]  # w1 (64, hidden), b1 (hidden,), w2 (hidden, 10), b2 (10,)


@dataclass(frozen=True)
class Split:
    """Pixels scaled to [0, 1] and integer labels."""

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


def pooled(seed: int) -> tuple[Split, Split]:
    """All training images (what a central trainer would pool) and the hold-out test set."""
    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    x, y = (digits.data[order] / 16.0).astype(np.float32), digits.target[order]
    cut = int(0.8 * len(y))
    return Split(x[:cut], y[:cut]), Split(x[cut:], y[cut:])


def hospital_data(index: int, shares: str, seed: int) -> tuple[Split, Split]:
    """Hospital ``index``'s own training and evaluation images (80/20 of its share)."""
    data, _ = pooled(seed)
    fractions = np.asarray([float(s) for s in shares.split(",")])
    bounds = (np.cumsum(fractions) / fractions.sum() * len(data.y)).astype(int)
    start = 0 if index == 0 else int(bounds[index - 1])
    x, y = data.x[start : bounds[index]], data.y[start : bounds[index]]
    cut = int(0.8 * len(y))
    return Split(x[:cut], y[:cut]), Split(x[cut:], y[cut:])


def initial_params(hidden: int, seed: int) -> Params:
    """He-initialised weights and zero biases (float32)."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, np.sqrt(2 / 64), (64, hidden))
    w2 = rng.normal(0, np.sqrt(2 / hidden), (hidden, 10))
    return [a.astype(np.float32) for a in (w1, np.zeros(hidden), w2, np.zeros(10))]


def _forward(params: Params, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w1, b1, w2, b2 = params
    hidden = np.maximum(x @ w1 + b1, 0.0)
    logits = hidden @ w2 + b2
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return hidden, exp / exp.sum(axis=1, keepdims=True)


def train(params: Params, data: Split, cfg: dict[str, Any], rng: np.random.Generator) -> float:
    """Mini-batch SGD on the cross-entropy, in place; the mean loss of the last epoch."""
    lr, batch = float(cfg["lr"]), int(cfg["batch-size"])
    loss = 0.0
    for _ in range(int(cfg["local-epochs"])):
        losses = []
        for idx in np.array_split(rng.permutation(len(data.y)), max(1, len(data.y) // batch)):
            x, y = data.x[idx], data.y[idx]
            hidden, probs = _forward(params, x)
            losses.append(float(-np.log(probs[np.arange(len(y)), y] + 1e-9).mean()))
            grad = probs
            grad[np.arange(len(y)), y] -= 1.0
            grad /= len(y)
            grad_hidden = (grad @ params[2].T) * (hidden > 0)
            steps = (x.T @ grad_hidden, grad_hidden.sum(0), hidden.T @ grad, grad.sum(0))
            for param, step in zip(params, steps, strict=True):
                param -= (lr * step).astype(np.float32)
        loss = float(np.mean(losses))
    return loss


def test(params: Params, data: Split) -> tuple[float, float]:
    """Cross-entropy and accuracy of ``params`` on ``data``."""
    _, probs = _forward(params, data.x)
    loss = float(-np.log(probs[np.arange(len(data.y)), data.y] + 1e-9).mean())
    return loss, float(np.mean(probs.argmax(axis=1) == data.y))
