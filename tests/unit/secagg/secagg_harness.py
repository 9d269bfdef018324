"""A minimal in-memory driver for secagg sessions, shared by the secagg unit tests.

It plays the part a Flower workflow and client mod will play: it moves each message between
one :class:`ServerSession` and the :class:`ClientSession` of every organization, and makes
organizations drop out by simply not delivering their replies from a given stage on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import numpy as np

from fedchain.errors import TooManyDropouts
from fedchain.secagg import (
    AggregateResult,
    ClientMessage,
    ClientSession,
    LocalUpdate,
    RoundConfig,
    ServerMessage,
    ServerSession,
    Stage,
)

COLLECTING = (Stage.ADVERTISE_KEYS, Stage.SHARE_KEYS, Stage.COLLECT_MASKED, Stage.UNMASK)


def entropy(org: str, seed: int = 0) -> bytes:
    """Deterministic per-organization entropy for reproducible sessions."""
    return hashlib.sha256(f"test-entropy/{seed}/{org}".encode()).digest()


def make_config(
    n: int = 3,
    *,
    threshold: int | None = None,
    degree: int | None = None,
    dim: int = 5,
    clip: float = 1.0,
    max_weight: int = 100,
    stochastic: bool = True,
) -> RoundConfig:
    """A config over orgs ``org0..org{n-1}`` with the smallest valid threshold by default."""
    k = n - 1 if degree is None or degree >= n - 1 else degree
    t = threshold if threshold is not None else (k + 1) // 2 + 1
    return RoundConfig(
        round_id="task-1/round-1",
        participants=tuple(f"org{i}" for i in range(n)),
        threshold=t,
        dim=dim,
        clip=clip,
        max_weight=max_weight,
        degree=degree,
        stochastic=stochastic,
        graph_seed=b"public graph seed",
    )


@dataclass
class Round:
    """One round in progress: the server, the clients and the server's pending messages."""

    config: RoundConfig
    updates: Mapping[str, LocalUpdate]
    seed: int = 0
    server: ServerSession = field(init=False)
    clients: dict[str, ClientSession] = field(init=False)
    outbox: dict[str, ServerMessage] = field(default_factory=dict)
    client_failures: dict[str, Exception] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.server = ServerSession(self.config)
        self.clients = {
            org: ClientSession(org, entropy=entropy(org, self.seed))
            for org in self.config.participants
        }

    def start(self) -> None:
        self.outbox = dict(self.server.start())

    def replies(self, silent: Collection[str] = ()) -> dict[str, ClientMessage]:
        """What every addressed, non-silent client answers (a client that fails drops)."""
        out: dict[str, ClientMessage] = {}
        for org, msg in sorted(self.outbox.items()):
            if org in silent:
                continue
            try:
                reply = self.clients[org].handle(msg, self.updates.get(org))
            except TooManyDropouts as exc:
                self.client_failures[org] = exc
                continue
            if reply is not None:
                out[org] = reply
        return out

    def step(self, silent: Collection[str] = ()) -> None:
        """Deliver the replies of the current stage and close it."""
        for org, reply in self.replies(silent).items():
            self.server.receive(org, reply)
        self.outbox = self.server.advance()

    def finish(self, silent: Collection[str] = ()) -> AggregateResult:
        for org, reply in self.replies(silent).items():
            self.server.receive(org, reply)
        return self.server.finish()


def drive(rnd: Round, drops: Mapping[Stage, Collection[str]] | None = None) -> AggregateResult:
    """Run ``rnd`` to the end; the orgs in ``drops[stage]`` stop replying from ``stage`` on."""
    drops = drops or {}
    rnd.start()
    silent: set[str] = set()
    for stage in COLLECTING[:-1]:
        silent |= set(drops.get(stage, ()))
        rnd.step(silent)
    silent |= set(drops.get(Stage.UNMASK, ()))
    return rnd.finish(silent)


def run_round(
    config: RoundConfig,
    updates: Mapping[str, LocalUpdate],
    drops: Mapping[Stage, Collection[str]] | None = None,
    seed: int = 0,
) -> tuple[Round, AggregateResult]:
    """A whole round with deterministic entropy (see :func:`drive`)."""
    rnd = Round(config, updates, seed)
    return rnd, drive(rnd, drops)


def random_updates(
    config: RoundConfig, seed: int = 0, max_weight: int | None = None
) -> dict[str, LocalUpdate]:
    """Float32 updates inside the clip range and random positive weights."""
    rng = np.random.default_rng(seed)
    top = max_weight or config.max_weight
    return {
        org: LocalUpdate(
            rng.uniform(-config.clip, config.clip, config.dim).astype(np.float32),
            int(rng.integers(1, top + 1)),
        )
        for org in config.participants
    }


def plain_weighted_sum(
    config: RoundConfig, updates: Mapping[str, LocalUpdate], orgs: Collection[str]
) -> tuple[np.ndarray, int]:
    """The reference: sum of weight * clipped update in float64, and the total weight."""
    total = np.zeros(config.dim)
    for org in orgs:
        u = updates[org]
        x = np.asarray(u.vector, dtype=np.float64)
        total += u.weight * np.clip(x, -config.clip, config.clip)
    return total, sum(updates[o].weight for o in orgs)
