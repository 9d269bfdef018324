"""Selection policies: which announced updates the aggregator takes, from ledger metadata only.

This is the seed protocol's communication saving: the aggregator decides from the ``update``
records (sample counts, small metrics) and only the selected updates are ever transferred.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fedchain.errors import ConfigError

__all__ = ["Announcement", "SelectionPolicy", "policy_named", "take_all", "threshold", "top_k"]


@dataclass(frozen=True)
class Announcement:
    """An ``ok`` update record as the selection policy sees it."""

    org: str
    update_sha256: str
    num_examples: int
    metrics: dict[str, float]


SelectionPolicy = Callable[[Sequence[Announcement]], list[str]]


def _value(a: Announcement, key: str) -> float:
    if key in ("num_examples", "num-examples"):
        return float(a.num_examples)
    return float(a.metrics.get(key, float("nan")))


def take_all() -> SelectionPolicy:
    """Take every announced update (the default)."""
    return lambda announced: sorted(a.org for a in announced)


def top_k(k: int, key: str = "num_examples", *, largest: bool = True) -> SelectionPolicy:
    """Take the ``k`` updates with the largest (or smallest) ``key``; ties broken by org id."""
    if k < 1:
        raise ConfigError(f"top-k selection needs k >= 1, got {k}")

    def policy(announced: Sequence[Announcement]) -> list[str]:
        known = [a for a in announced if _value(a, key) == _value(a, key)]  # drop NaN
        sign = -1.0 if largest else 1.0
        ranked = sorted(known, key=lambda a: (sign * _value(a, key), a.org))
        return sorted(a.org for a in ranked[:k])

    return policy


def threshold(
    key: str, *, minimum: float | None = None, maximum: float | None = None
) -> SelectionPolicy:
    """Take the updates whose ``key`` lies within ``[minimum, maximum]`` (missing: not taken)."""

    def policy(announced: Sequence[Announcement]) -> list[str]:
        def ok(a: Announcement) -> bool:
            v = _value(a, key)
            return (
                v == v and (minimum is None or v >= minimum) and (maximum is None or v <= maximum)
            )

        return sorted(a.org for a in announced if ok(a))

    return policy


def policy_named(name: str, **options: Any) -> SelectionPolicy:
    """Build a policy from configuration: ``all``, ``top-k`` (k, key) or ``threshold``."""
    if name == "all":
        return take_all()
    if name == "top-k":
        return top_k(int(options.get("k") or 1), str(options.get("key") or "num_examples"))
    if name == "threshold":
        return threshold(
            str(options.get("key") or "num_examples"),
            minimum=options.get("minimum"),
            maximum=options.get("maximum"),
        )
    raise ConfigError(f"unknown selection policy {name!r} (all, top-k, threshold)")
