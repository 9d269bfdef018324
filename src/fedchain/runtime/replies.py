"""What a reply must hold before any strategy sees it (G9, G11).

Flower's strategies trust the replies they are given: a ``num-examples`` that is NaN, negative
or a list, a second ``MetricRecord``, an ArrayRecord too many or too few, metric keys that
differ between replies, all raise inside ``aggregate_train`` or silently poison the model. The
aggregator therefore checks each reply against what its task type requires
(:func:`check_content`), and the replies of one task against each other
(:func:`inconsistent`), and refuses the offenders alone.

* ``train`` with a model: exactly one ArrayRecord (checked against the model sent, see
  :func:`~fedchain.runtime.arrays.validate_reply_arrays`) and one MetricRecord, nothing else;
* ``evaluate``: exactly one MetricRecord, nothing else;
* in both, metrics are finite scalars, ``num-examples`` is an integer in ``[1, 2^53 - 1]``
  equal to the ``num_examples`` of the organization's ``update`` record, and the metrics equal
  those the record announced (the selection policy chose from them);
* a secure-aggregation stage reply holds at most the secure-aggregation ConfigRecord (its
  contents are checked by the secure-aggregation session);
* other message types (``query``, custom ones) are the app's business: only arrays answering a
  model are checked.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

from flwr.app import ArrayRecord, MetricRecord, RecordDict

from fedchain.errors import UpdateRejected
from fedchain.ledger.canonical import MAX_SAFE_INT
from fedchain.runtime.arrays import validate_reply_arrays
from fedchain.runtime.rounds import finite_metrics

__all__ = [
    "SECAGG_RECORD", "WEIGHT_KEY", "Shape", "check_content", "inconsistent", "reply_shape",
    "task_kind",
]

#: The weight every train and evaluate reply reports (Flower's strategies' default key).
WEIGHT_KEY = "num-examples"
#: ``fedchain.flower.secagg_codec.SECAGG_RECORD`` (not imported: ``fedchain.flower`` imports
#: the runtime); a unit test keeps the two equal.
SECAGG_RECORD = "fedchain.secagg"
Shape = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]


def task_kind(message_type: str, content: RecordDict) -> str:
    """``train``, ``evaluate``, ``secagg`` or ``other``: which rules a reply to ``content``
    (sent as ``message_type``) follows."""
    base = message_type.split(".", 1)[0]
    if SECAGG_RECORD in content.config_records:
        return "secagg"
    if base == "train" and len(content.array_records) == 1:
        return "train"
    return base if base == "evaluate" else "other"


def check_content(
    org: str,
    kind: str,
    content: RecordDict,
    model: ArrayRecord | None,
    announced: Mapping[str, Any],
) -> None:
    """Refuse (``UpdateRejected``) ``org``'s reply ``content`` unless it holds what a ``kind``
    task requires; ``model`` is the model sent, ``announced`` the org's ``update`` record."""
    if kind == "secagg":
        extra = set(content.keys()) - {SECAGG_RECORD}
        if extra or content.array_records or content.metric_records:
            raise UpdateRejected(org, f"a secure-aggregation reply holds {_census(content)}")
        return
    if kind not in {"train", "evaluate"}:
        if model is not None:
            for got in content.array_records.values():
                validate_reply_arrays(org, model, got)
        return
    arrays = 1 if kind == "train" else 0
    if (
        len(content.array_records) != arrays
        or len(content.metric_records) != 1
        or content.config_records
    ):
        want = "one ArrayRecord and one MetricRecord" if arrays else "one MetricRecord"
        raise UpdateRejected(org, f"a {kind} reply holds {_census(content)}, not {want}")
    if model is not None:
        for got in content.array_records.values():
            validate_reply_arrays(org, model, got)
    (metrics,) = content.metric_records.values()
    _check_weight(org, metrics.get(WEIGHT_KEY), announced.get("num_examples"))
    _check_metrics(org, metrics)
    if finite_metrics(metrics) != dict(announced.get("metrics") or {}):
        raise UpdateRejected(org, "metrics differ from those announced on the ledger")


def reply_shape(content: RecordDict) -> Shape:
    """What Flower's strategies require to agree between replies: record names, metric keys."""
    metric_keys = (k for m in content.metric_records.values() for k in m)
    return (
        tuple(content.array_records),
        tuple(content.metric_records),
        tuple(sorted(metric_keys)),
    )


def inconsistent(shapes: Mapping[str, Shape], prefer: str) -> dict[str, str]:
    """Orgs (with a reason) whose reply differs in :func:`reply_shape` from the most common one.

    A tie goes to the group holding ``prefer`` (the aggregator's own organization), then to the
    group whose first organization sorts first: one reply's extra metric cannot make Flower
    refuse the whole round, nor pass itself off as the norm against a majority.
    """
    counts = Counter(shapes.values())
    if len(counts) <= 1:
        return {}
    first = {s: min(o for o, v in shapes.items() if v == s) for s in counts}
    norm = min(counts, key=lambda s: (-counts[s], shapes.get(prefer) != s, first[s]))
    return {
        org: f"records {list(s[0] + s[1])} with metrics {list(s[2])[:16]} differ from the "
        f"other replies' {list(norm[0] + norm[1])} with metrics {list(norm[2])[:16]}"
        for org, s in shapes.items()
        if s != norm
    }


def _census(content: RecordDict) -> str:
    return (
        f"{len(content.array_records)} ArrayRecord(s), {len(content.metric_records)} "
        f"MetricRecord(s), {len(content.config_records)} ConfigRecord(s)"
    )


def _check_metrics(org: str, metrics: MetricRecord) -> None:
    """Every metric a finite int or float: Flower averages each one (a list, NaN or Inf in one
    reply would break or poison the aggregate metrics)."""
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UpdateRejected(org, f"metric {key[:64]!r} is a {type(value).__name__}")
        if not math.isfinite(value):
            raise UpdateRejected(org, f"metric {key[:64]!r} is {value}")


def _check_weight(org: str, value: Any, announced: Any) -> None:
    """``num-examples``: an integer in ``[1, 2^53 - 1]``, equal to what the ledger says."""
    if value is None:
        raise UpdateRejected(org, f"the reply has no {WEIGHT_KEY}")
    if not (isinstance(value, float) and value.is_integer()) and (
        isinstance(value, bool) or not isinstance(value, int)
    ):
        raise UpdateRejected(org, f"{WEIGHT_KEY} {value!r} is not an integer")
    if not 1 <= value <= MAX_SAFE_INT:
        raise UpdateRejected(org, f"{WEIGHT_KEY} {value!r} is not in [1, 2^53 - 1]")
    if value != announced:
        raise UpdateRejected(
            org, f"{WEIGHT_KEY} {value!r} differs from the {announced!r} announced on the ledger"
        )
