"""Multinomial logistic regression in NumPy (float64), trained by full-batch gradient descent:
deterministic, so fedchain and Flower's simulation must end on the same model."""

from __future__ import annotations

import numpy as np

CLASSES = 10


def init_params(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(scale=0.01, size=(64, CLASSES)), np.zeros(CLASSES)]


def _probabilities(params: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    logits = x @ params[0] + params[1]
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return np.asarray(exp / exp.sum(axis=1, keepdims=True))


def loss_and_accuracy(
    params: list[np.ndarray], x: np.ndarray, y: np.ndarray
) -> tuple[float, float]:
    p = _probabilities(params, x)
    loss = float(-np.mean(np.log(p[np.arange(len(y)), y] + 1e-12)))
    return loss, float(np.mean(p.argmax(axis=1) == y))


def train(
    params: list[np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    lr: float,
    mu: float = 0.0,
) -> list[np.ndarray]:
    """``epochs`` gradient steps; ``mu`` > 0 adds FedProx's proximal term."""
    w, b = (p.copy() for p in params)
    onehot = np.eye(CLASSES)[y]
    for _ in range(epochs):
        error = (_probabilities([w, b], x) - onehot) / len(y)
        w -= lr * (x.T @ error + mu * (w - params[0]))
        b -= lr * (error.sum(axis=0) + mu * (b - params[1]))
    return [w, b]
