"""The one metric filter used by update records (client side) and close records (aggregator)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from flwr.app import MetricRecord, RecordDict

from fedchain.ledger import canonical_json, parse_record
from fedchain.ledger.canonical import loads
from fedchain.runtime.messages import num_examples, small_metrics
from fedchain.runtime.rounds import MAX_METRICS, RoundLog, finite_metrics


def test_only_finite_numbers_under_ledger_names_are_kept() -> None:
    metrics = {
        "loss": 0.5, "num-examples": 10, "train loss": 1.5, "x" * 70: 2.0,
        "nan": math.nan, "inf": -math.inf, "flag": True, "text": "hi", "é": 1.0, " x": 3.0,
    }  # fmt: skip
    assert finite_metrics(metrics) == {
        "loss": 0.5, "num-examples": 10, "train_loss": 1.5, "x" * 64: 2.0, "flag": 1,
    }  # fmt: skip


def test_later_sources_override_and_at_most_the_first_names_are_kept() -> None:
    many = {f"m{i:03d}": float(i) for i in range(MAX_METRICS + 10)}
    kept = finite_metrics({"m000": math.nan, "a": 1.0}, many, {"a": 2.0, "m001": math.inf})
    assert len(kept) == MAX_METRICS
    assert list(kept) == sorted(kept)
    assert kept["a"] == 2.0  # the later finite value wins
    assert (kept["m000"], kept["m001"]) == (0.0, 1.0)  # a non-finite one never overrides


def test_reply_metrics_and_close_metrics_filter_alike() -> None:
    content = RecordDict({"metrics": MetricRecord({"train loss": 0.25, "acc": 0.9})})
    assert small_metrics(content) == {"acc": 0.9, "train_loss": 0.25}
    close = RoundLog(round=1).close_record(
        "org1", "run1", None, {"train loss": 0.25, "acc": 0.9, "bad": math.nan}
    )
    assert close["metrics"] == small_metrics(content)
    assert parse_record(close).kind == "close"  # the ledger accepts what the filter keeps


def test_ints_beyond_the_exact_json_range_become_floats_or_are_dropped() -> None:
    big = {"t_ns": 1_700_000_000_123_456_789, "huge": 10**400, "edge": 2**53 - 1, "neg": -(2**60)}
    kept = finite_metrics(big)
    assert kept == {"t_ns": 1.7000000001234568e18, "edge": 2**53 - 1, "neg": -1.152921504606847e18}
    assert isinstance(kept["edge"], int)
    close = RoundLog(round=1).close_record("org1", "run1", None, big)
    assert parse_record(close)["metrics"] == kept  # the ledger takes the record


def test_num_examples_that_is_not_a_finite_count_reads_as_zero() -> None:
    """``int(inf)`` raised OverflowError in the organization's own client and killed it."""
    for bad in (math.inf, -math.inf, math.nan, -3, [5]):
        content = RecordDict({"m": MetricRecord({"num-examples": bad})})
        assert num_examples(content) == 0, bad
    assert num_examples(RecordDict({"m": MetricRecord({"num-examples": 7.0})})) == 7


NUMPY_SCALARS = [
    *(np.dtype(code).type(3) for code in "efdg"),  # float16, float32, float64, longdouble
    *(np.dtype(code).type(-7) for code in "bhilq"),  # int8 .. int64
    *(np.dtype(code).type(7) for code in "BHILQ"),  # uint8 .. uint64
    np.float32(0.1), np.float64(293.7), np.bool_(True), np.bool_(False), True, False,
]  # fmt: skip


@pytest.mark.parametrize("value", NUMPY_SCALARS, ids=lambda v: f"{type(v).__name__}({v})")
def test_numpy_scalars_and_bools_reach_the_ledger_as_plain_numbers(value: object) -> None:
    """numpy 2 prints ``np.float64(293.7)`` as its repr: canonical JSON wrote that and the
    organization's process died; numpy ints were dropped. Every kind is kept, as its value."""
    kept = finite_metrics({"m": value})
    assert list(kept) == ["m"]
    assert type(kept["m"]) in (int, float)
    assert kept["m"] == (int(value) if isinstance(value, bool | np.bool_) else value)
    close = RoundLog(round=1).close_record("org1", "run1", None, {"m": value})
    assert parse_record(close)["metrics"] == kept  # the ledger takes the record
    assert loads(canonical_json(kept)) == kept


def test_canonical_json_writes_number_subclasses_as_their_number() -> None:
    """A ``float`` subclass (``np.float64``) or ``int`` subclass prints as the plain number."""
    written = canonical_json({"a": np.float64(293.7), "b": np.float64(1e21)})
    assert written == b'{"a":293.7,"b":1e+21}'

    class Count(int):
        def __repr__(self) -> str:
            return "Count!"

    assert canonical_json([Count(5)]) == b"[5]"
