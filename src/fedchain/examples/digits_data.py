"""Bundled data for the built-in app: scikit-learn's ``load_digits``, split non-IID.

Nothing is downloaded: the 1,797 8×8 digit images ship inside scikit-learn. A fixed 20 %
hold-out test set is kept apart (for the centrally trained baseline and the final check); the
rest is divided among organizations by a per-class Dirichlet(α) draw, the usual way to make
label-skewed, non-IID partitions in federated-learning experiments.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from sklearn.datasets import load_digits

__all__ = ["Split", "dirichlet_partition", "holdout", "partition"]

NUM_CLASSES = 10
NUM_FEATURES = 64


@dataclass(frozen=True)
class Split:
    """Features (scaled to [0, 1]) and integer labels."""

    x: np.ndarray
    y: np.ndarray


@lru_cache(maxsize=4)
def _shuffled(seed: int) -> tuple[Split, Split]:
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order], y[order]
    cut = int(0.8 * len(y))
    return Split(x[:cut], y[:cut]), Split(x[cut:], y[cut:])


def holdout(seed: int = 0) -> tuple[Split, Split]:
    """The pooled training set and the common hold-out test set."""
    return _shuffled(seed)


def dirichlet_partition(
    labels: np.ndarray, parts: int, alpha: float, seed: int
) -> list[np.ndarray]:
    """Indices of ``labels`` for each of ``parts`` partitions, label-skewed by Dirichlet(α)."""
    rng = np.random.default_rng(seed)
    buckets: list[list[int]] = [[] for _ in range(parts)]
    for cls in range(int(labels.max()) + 1):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        shares = rng.dirichlet(np.full(parts, alpha))
        cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(int)
        for bucket, chunk in zip(buckets, np.split(idx, cuts), strict=True):
            bucket.extend(chunk.tolist())
    return [np.sort(np.asarray(b, dtype=np.int64)) for b in buckets]


def partition(index: int, parts: int, *, alpha: float = 0.5, seed: int = 0) -> tuple[Split, Split]:
    """Organization ``index``'s local train and test splits (80/20 of its partition)."""
    train, _ = holdout(seed)
    idx = dirichlet_partition(train.y, parts, alpha, seed + 1)[index]
    x, y = train.x[idx], train.y[idx]
    cut = max(1, int(0.8 * len(y)))
    return Split(x[:cut], y[:cut]), Split(x[cut:], y[cut:])
