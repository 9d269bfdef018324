"""A small multilayer perceptron in NumPy (64 → 32 → 10), enough for the digits demo.

Plain NumPy keeps the demo free of a deep-learning framework; the arithmetic is the usual
softmax cross-entropy with mini-batch SGD. Randomness is injected through ``rng``.
"""

from __future__ import annotations

import numpy as np

from fedchain.examples.digits_data import NUM_CLASSES, NUM_FEATURES, Split

__all__ = ["HIDDEN", "evaluate", "init_params", "train"]

HIDDEN = 32
Params = list[np.ndarray]


def init_params(seed: int = 0) -> Params:
    """He-initialised weights and zero biases (float32)."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, np.sqrt(2 / NUM_FEATURES), (NUM_FEATURES, HIDDEN))
    w2 = rng.normal(0, np.sqrt(2 / HIDDEN), (HIDDEN, NUM_CLASSES))
    zeros = np.zeros
    return [a.astype(np.float32) for a in (w1, zeros(HIDDEN), w2, zeros(NUM_CLASSES))]


def _forward(params: Params, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w1, b1, w2, b2 = params
    hidden = np.maximum(x @ w1 + b1, 0.0)
    logits = hidden @ w2 + b2
    logits = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    return hidden, probs / probs.sum(axis=1, keepdims=True)


def train(
    params: Params, data: Split, *, epochs: int, lr: float, batch: int, rng: np.random.Generator
) -> tuple[Params, float]:
    """Mini-batch SGD on ``data``; returns new parameters and the mean training loss."""
    w1, b1, w2, b2 = (p.astype(np.float32, copy=True) for p in params)
    losses = []
    for _ in range(epochs):
        order = rng.permutation(len(data.y))
        for start in range(0, len(order), batch):
            pick = order[start : start + batch]
            x, y = data.x[pick], data.y[pick]
            hidden, probs = _forward([w1, b1, w2, b2], x)
            losses.append(float(-np.log(probs[np.arange(len(y)), y] + 1e-12).mean()))
            grad = probs
            grad[np.arange(len(y)), y] -= 1.0
            grad /= len(y)
            g_hidden = (grad @ w2.T) * (hidden > 0)
            w2 -= lr * (hidden.T @ grad)
            b2 -= lr * grad.sum(axis=0)
            w1 -= lr * (x.T @ g_hidden)
            b1 -= lr * g_hidden.sum(axis=0)
    return [w1, b1, w2, b2], float(np.mean(losses)) if losses else 0.0


def evaluate(params: Params, data: Split) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy of ``params`` on ``data``."""
    if len(data.y) == 0:
        return 0.0, 0.0
    _, probs = _forward(params, data.x)
    loss = float(-np.log(probs[np.arange(len(data.y)), data.y] + 1e-12).mean())
    return loss, float((probs.argmax(axis=1) == data.y).mean())
