"""Who to leave out of a round when organizations accuse neighbours of unopenable share boxes.

An accusation ("the share box ``u`` sent me does not open") cannot be checked by the aggregator
without learning what the box hides, so each one is a *dispute* between two organizations, at
least one of which misbehaved (or the aggregator tampered with the relay). Every dispute must
lose an organization: the accuser left its pairwise mask with the accused out of its vector, so
the two vectors cannot both be in the sum.

The rule: repeatedly leave out the organizations in the most open disputes (all of them on a
tie); when every open dispute is a lone one, leave out both sides. One member sending bad boxes
to several honest neighbours is in as many disputes as they are together and is the one left
out; a member accusing honest neighbours falsely is likewise the one left out; a single dispute
cannot be decided and costs both. Deterministic: every party can recompute it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping

__all__ = ["reason", "settle"]


def settle(accusations: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """Organizations to leave out, each with the reason recorded on the ledger.

    ``accusations``: accuser -> the neighbours whose share box did not open for it.
    """
    pairs = _pairs(accusations)
    open_ = {frozenset(p) for p in pairs}
    out: set[str] = set()
    while open_:
        degree = Counter(org for pair in open_ for org in pair)
        top = max(degree.values())
        worst = {org for org, d in degree.items() if d == top}
        out |= worst if top > 1 else set(degree)
        open_ = {pair for pair in open_ if not pair & out}
    return {org: reason(org, accusations) for org in sorted(out)}


def _pairs(accusations: Mapping[str, Iterable[str]]) -> set[tuple[str, str]]:
    return {(v, u) for v, accused in accusations.items() for u in accused if u != v}


def reason(
    org: str, accusations: Mapping[str, Iterable[str]], name: Callable[[str], str] = str
) -> str:
    """Why ``org`` was left out, naming its accusers and whom it accused (through ``name``)."""
    pairs = _pairs(accusations)
    by = sorted(name(v) for v, u in pairs if u == org)
    did = sorted(name(u) for v, u in pairs if v == org)
    parts = []
    if by:
        parts.append(f"its share boxes did not open for {', '.join(by)} (accused by them)")
    if did:
        parts.append(f"it accused {', '.join(did)} of share boxes that did not open")
    return "secagg.misbehaving: " + "; ".join(parts) + "; left out of the secure sum"
