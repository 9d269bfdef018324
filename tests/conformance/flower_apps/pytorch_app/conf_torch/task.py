"""A small PyTorch MLP on 8x8 digits, trained deterministically (one CPU thread, a seeded
shuffle), as Flower's quickstart-pytorch trains its CNN."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

torch.set_num_threads(1)  # the same summation order in every process


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.layers(x)
        return out


def new_model(seed: int = 0) -> Net:
    torch.manual_seed(seed)
    return Net()


def train(net: Net, x: np.ndarray, y: np.ndarray, *, epochs: int, batch: int, lr: float,
          seed: int) -> float:  # fmt: skip
    """Mini-batch SGD; returns the mean training loss of the last epoch."""
    data, labels = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    net.train()
    losses: list[float] = []
    for _ in range(epochs):
        losses = []
        for rows in torch.randperm(len(labels), generator=generator).split(batch):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(net(data[rows]), labels[rows])
            loss.backward()
            optimizer.step()
            losses.append(float(loss))
    return float(np.mean(losses))


def test(net: Net, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Loss and accuracy."""
    net.eval()
    with torch.no_grad():
        logits = net(torch.tensor(x, dtype=torch.float32))
        labels = torch.tensor(y, dtype=torch.long)
        loss = float(nn.functional.cross_entropy(logits, labels))
        return loss, float((logits.argmax(dim=1) == labels).float().mean())
