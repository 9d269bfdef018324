"""The SecAgg+ neighbour graph: a k-regular Harary-style ring over a public shuffle.

The sorted participant list is shuffled (Fisher-Yates driven by an AES-CTR stream keyed from
the public ``seed``) and laid on a ring; each organization's neighbours are the ``k // 2``
nearest on each side, plus the diametrically opposite one when ``k`` is odd (which needs an even
number of participants). With ``k >= n - 1`` every organization neighbours every other one
(all-to-all, as in the original SecAgg). Everyone computes the same graph from public data, so
the aggregator cannot choose neighbourhoods.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from fedchain.errors import ConfigError
from fedchain.secagg._wire import label, lp, utf8
from fedchain.secagg.prg import Drbg

__all__ = ["effective_degree", "neighbour_graph", "ring_order"]


def effective_degree(n: int, degree: int | None) -> int:
    """The number of neighbours each of ``n`` organizations gets (``None``: all-to-all)."""
    if degree is None or degree >= n - 1:
        return n - 1
    if degree < 1:
        raise ConfigError(f"degree must be at least 1, got {degree}")
    if degree % 2 == 1 and n % 2 == 1:
        raise ConfigError(f"no {degree}-regular graph on {n} organizations: use an even degree")
    return degree


def ring_order(participants: Sequence[str], seed: bytes) -> list[str]:
    """The sorted participants, shuffled deterministically by the public ``seed``."""
    order = sorted(participants)
    key = hashlib.sha256(lp(label("graph"), seed, *map(utf8, order))).digest()
    drbg = Drbg(key)
    for i in range(len(order) - 1, 0, -1):
        j = drbg.below(i + 1)
        order[i], order[j] = order[j], order[i]
    return order


def neighbour_graph(
    participants: Sequence[str], degree: int | None, seed: bytes
) -> Mapping[str, frozenset[str]]:
    """Each organization's neighbours (never itself); the relation is symmetric."""
    n = len(participants)
    k = effective_degree(n, degree)
    if k == n - 1:
        everyone = frozenset(participants)
        return {org: everyone - {org} for org in participants}
    order = ring_order(participants, seed)
    offsets = [d for h in range(1, k // 2 + 1) for d in (h, -h)]
    if k % 2 == 1:
        offsets.append(n // 2)
    return {org: frozenset(order[(i + d) % n] for d in offsets) for i, org in enumerate(order)}
