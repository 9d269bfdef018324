"""The public parameters of one secure-aggregation round, validated once.

Every party derives the same neighbour graph, quantizer and key-derivation context from a
:class:`RoundConfig`. Its :attr:`~RoundConfig.digest` salts every key derivation, so parties that
were handed different configurations cannot agree on any key: the round fails instead of
silently mixing parameters. The integration may anchor the digest on the ledger.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from fedchain.errors import ConfigError
from fedchain.secagg._wire import label, lp, utf8
from fedchain.secagg.graph import effective_degree, neighbour_graph
from fedchain.secagg.quantize import Quantizer

__all__ = ["MAX_DIM", "RoundConfig"]

MAX_DIM = 1 << 30


@dataclass(frozen=True)
class RoundConfig:
    """Parameters every organization and the aggregator must agree on.

    ``participants`` are ledger org ids (stored sorted). ``threshold`` is the Shamir threshold t
    over each holder set (an organization plus its ``degree`` neighbours); it must be a strict
    majority of that set so that an aggregator lying about who dropped cannot collect t shares
    of both kinds for one organization. ``degree=None`` means all-to-all. ``dim`` is the number
    of float parameters; ``clip`` the per-coordinate clipping bound; ``max_weight`` the largest
    sample-count weight an organization may use. ``graph_seed`` is public (e.g. a ledger hash).
    """

    round_id: str
    participants: tuple[str, ...]
    threshold: int
    dim: int
    clip: float
    max_weight: int
    degree: int | None = None
    stochastic: bool = True
    graph_seed: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        parts = tuple(sorted(self.participants))
        object.__setattr__(self, "participants", parts)
        n = len(parts)
        if not self.round_id:
            raise ConfigError("round_id must not be empty")
        if n < 3 or len(set(parts)) != n or not all(parts):
            raise ConfigError("need at least 3 distinct, non-empty organization ids")
        if not 1 <= self.dim <= MAX_DIM:
            raise ConfigError(f"dim must be in [1, {MAX_DIM}], got {self.dim}")
        if not (math.isfinite(self.clip) and self.clip > 0):
            raise ConfigError(f"clip must be a positive finite number, got {self.clip}")
        if not 1 <= self.max_weight <= (2**32 - 1) // n:
            raise ConfigError(
                f"max_weight must be in [1, {(2**32 - 1) // n}] so {n} weights sum in 32 bits"
            )
        if len(self.graph_seed) > 64:
            raise ConfigError("graph_seed must be at most 64 bytes")
        k = effective_degree(n, self.degree)
        t = self.threshold
        if not (2 * t > k + 1 and 2 <= t <= k + 1):
            raise ConfigError(
                f"threshold must satisfy 2 <= t <= {k + 1} and 2t > {k + 1} (a strict majority "
                f"of each organization plus its {k} neighbours), got {t}"
            )

    @property
    def n(self) -> int:
        """Number of participants."""
        return len(self.participants)

    @property
    def k(self) -> int:
        """Effective degree: neighbours per organization."""
        return effective_degree(self.n, self.degree)

    @cached_property
    def neighbours(self) -> Mapping[str, frozenset[str]]:
        """The neighbour graph (symmetric, no self loops)."""
        return neighbour_graph(self.participants, self.degree, self.graph_seed)

    def holders(self, org: str) -> frozenset[str]:
        """Who holds shares of ``org``'s secrets: its neighbours and itself."""
        return self.neighbours[org] | {org}

    def x_of(self, org: str) -> int:
        """The Shamir x-coordinate of ``org``: its 1-based position in ``participants``."""
        return self.participants.index(org) + 1

    @cached_property
    def quantizer(self) -> Quantizer:
        """The quantizer every organization uses (headroom for all participants)."""
        return Quantizer(self.n, self.clip, self.max_weight, stochastic=self.stochastic)

    @cached_property
    def digest(self) -> bytes:
        """SHA-256 of a canonical encoding of every field (the key-derivation context)."""
        fields = [
            label("config"),
            utf8(self.round_id),
            lp(*map(utf8, self.participants)),
            struct.pack(">IQ", self.threshold, self.dim),
            struct.pack(">dQ?", self.clip, self.max_weight, self.stochastic),
            b"" if self.degree is None else struct.pack(">I", self.degree),
            self.graph_seed,
        ]
        return hashlib.sha256(lp(*fields)).digest()
