"""The benchmark's model: ``params`` float32 values in two arrays (a weight and a bias)."""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord

BIAS = 1024


def initial_model(params: int, seed: int = 0) -> ArrayRecord:
    """Random float32 arrays totalling ``params`` values (at least ``BIAS + 1``)."""
    rng = np.random.default_rng(seed)
    bias = min(BIAS, max(params // 2, 1))
    weight = rng.standard_normal(params - bias, dtype=np.float32)
    return ArrayRecord(
        array_dict={"weight": Array(weight), "bias": Array(np.zeros(bias, dtype=np.float32))}
    )
