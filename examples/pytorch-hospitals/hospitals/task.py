"""Data, model and training of the app: plain PyTorch, nothing federated here.

The 1,797 8x8 images of scikit-learn's ``load_digits`` (shipped inside scikit-learn, nothing
is downloaded) are shuffled with a fixed seed; 20 % is a hold-out test set that only the
server's central evaluation and the centrally trained baseline use. The rest is divided among
the hospitals by a per-class Dirichlet(alpha) draw, so each hospital sees a skewed mix of
digits; each hospital keeps 20 % of its share for federated evaluation.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

Split = tuple[torch.Tensor, torch.Tensor]


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


class Net(nn.Module):
    """Two 3x3 convolutions with max-pooling, then two dense layers (about 14,000 weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 16 x 4 x 4
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 32 x 2 x 2
        )  # fmt: skip
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def new_model(seed: int) -> Net:
    """The initial global model, the same for every seed on every machine."""
    torch.manual_seed(seed)
    return Net()


def _shuffled(seed: int) -> tuple[np.ndarray, np.ndarray]:
    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    images = (digits.images[order] / 16.0).astype(np.float32)[:, None, :, :]
    return images, digits.target[order].astype(np.int64)


def _tensors(x: np.ndarray, y: np.ndarray) -> Split:
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))


def pooled(seed: int) -> tuple[Split, Split]:
    """All training images (what a central trainer would pool) and the hold-out test set."""
    x, y = _shuffled(seed)
    cut = int(0.8 * len(y))
    return _tensors(x[:cut], y[:cut]), _tensors(x[cut:], y[cut:])


def dirichlet_split(labels: np.ndarray, parts: int, alpha: float, seed: int) -> list[np.ndarray]:
    """Indices of ``labels`` for each of ``parts`` hospitals, label-skewed by Dirichlet(alpha)."""
    rng = np.random.default_rng(seed)
    shares: list[list[int]] = [[] for _ in range(parts)]
    for digit in range(int(labels.max()) + 1):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        cuts = (np.cumsum(rng.dirichlet(np.full(parts, alpha)))[:-1] * len(idx)).astype(int)
        for share, chunk in zip(shares, np.split(idx, cuts), strict=True):
            share.extend(chunk.tolist())
    return [np.sort(np.asarray(share, dtype=np.int64)) for share in shares]


def hospital_data(index: int, parts: int, alpha: float, seed: int) -> tuple[Split, Split]:
    """Hospital ``index``'s own training and evaluation images (80/20 of its share)."""
    (x, y), _ = pooled(seed)
    idx = dirichlet_split(y.numpy(), parts, alpha, seed + 1)[index]
    cut = max(1, int(0.8 * len(idx)))
    return (x[idx[:cut]], y[idx[:cut]]), (x[idx[cut:]], y[idx[cut:]])


def train(model: Net, data: Split, *, epochs: int, lr: float, batch: int, seed: int) -> float:
    """Mini-batch SGD with momentum; returns the mean training loss of the last epoch."""
    x, y = data
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    total = 0.0
    for _ in range(epochs):
        total = 0.0
        for batch_idx in torch.randperm(len(y), generator=generator).split(batch):
            optimizer.zero_grad()
            loss = loss_fn(model(x[batch_idx]), y[batch_idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch_idx)
    return total / max(len(y), 1)


def test(model: Net, data: Split) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy of ``model`` on ``data``."""
    x, y = data
    model.eval()
    with torch.no_grad():
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y).item()
        accuracy = (logits.argmax(dim=1) == y).float().mean().item()
    return loss, accuracy
