"""What both halves share: the model, each organization's target, and where the test reads
what the app saw (``ITEMSAPP_OUT``: a folder the test gives in the environment)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np


def init_params(width: int) -> list[np.ndarray]:
    """A ``width`` x 4 matrix and a 4-vector, float32, from a fixed seed."""
    rng = np.random.default_rng(0)
    return [rng.normal(size=(width, 4)).astype(np.float32), np.zeros(4, dtype=np.float32)]


def target(index: int, width: int) -> list[np.ndarray]:
    """Organization ``index`` pulls the model toward this."""
    return [np.full((width, 4), index, np.float32), np.full(4, -index, np.float32)]


def record(name: str, data: dict[str, Any]) -> None:
    """Write ``data`` as ``<ITEMSAPP_OUT>/<name>.json``, each value with its Python type."""
    folder = os.environ.get("ITEMSAPP_OUT")
    if folder:
        typed = {k: [type(v).__name__, v] for k, v in data.items()}
        (Path(folder) / f"{name}.json").write_text(json.dumps(typed, sort_keys=True))
