"""The rules a reply must meet before any strategy sees it (``fedchain.runtime.replies``), and
the bytes-level array checks: each rule on its own, with the reason it records."""

from __future__ import annotations

import io
import re
from typing import Any

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from fedchain.errors import UpdateRejected
from fedchain.flower.secagg_codec import SECAGG_RECORD as CODEC_SECAGG_RECORD
from fedchain.runtime.arrays import validate_reply_arrays
from fedchain.runtime.replies import (
    SECAGG_RECORD,
    check_content,
    inconsistent,
    reply_shape,
    task_kind,
)

MODEL = ArrayRecord({"w": Array(np.ones((2, 3), np.float32)), "b": Array(np.zeros(3, np.float32))})
ANNOUNCED = {"num_examples": 7, "metrics": {"loss": 0.5, "num-examples": 7}}


def _npy(values: np.ndarray[Any, Any]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, values, allow_pickle=False)
    return buffer.getvalue()


def _reply(changed: dict[str, Any] | None = None, **records: Any) -> RecordDict:
    """An honest train reply, its metrics ``changed``, its records replaced (None: removed)."""
    base: dict[str, Any] = {
        "arrays": ArrayRecord({k: Array(v.numpy()) for k, v in MODEL.items()}),
        "metrics": MetricRecord({"loss": 0.5, "num-examples": 7, **(changed or {})}),
    }
    base.update(records)
    return RecordDict({k: v for k, v in base.items() if v is not None})


def _refused(content: RecordDict, kind: str = "train", announced: Any = None) -> str:
    with pytest.raises(UpdateRejected) as refused:
        check_content("org2", kind, content, MODEL, ANNOUNCED if announced is None else announced)
    return refused.value.reason


def test_the_secagg_record_name_is_the_codecs() -> None:
    assert SECAGG_RECORD == CODEC_SECAGG_RECORD


def test_task_kinds() -> None:
    train = RecordDict({"arrays": MODEL, "config": ConfigRecord({"server-round": 1})})
    assert task_kind("train", train) == "train"
    assert task_kind("train.fit", train) == "train"
    assert task_kind("evaluate", train) == "evaluate"
    assert task_kind("query", train) == "other"
    assert task_kind("train", RecordDict({"config": ConfigRecord()})) == "other"  # no model
    assert task_kind("train", RecordDict({SECAGG_RECORD: ConfigRecord()})) == "secagg"


def test_an_honest_reply_passes() -> None:
    check_content("org2", "train", _reply(), MODEL, ANNOUNCED)
    check_content("org2", "evaluate", _reply(arrays=None), None, ANNOUNCED)
    float_weight = _reply({"num-examples": 7.0})
    check_content("org2", "train", float_weight, MODEL, ANNOUNCED)


@pytest.mark.parametrize(
    ("weight", "reason"),
    [
        (float("nan"), "num-examples nan is not an integer"),
        (float("inf"), "num-examples inf is not an integer"),
        (2.5, "num-examples 2.5 is not an integer"),
        ([7], r"num-examples \[7\] is not an integer"),
        (-7, r"num-examples -7 is not in \[1, 2\^53 - 1\]"),
        (0, "is not in"),
        (2**60, "is not in"),
        (8, "num-examples 8 differs from the 7 announced on the ledger"),
    ],
)
def test_num_examples_must_be_a_positive_integer_equal_to_the_ledgers(
    weight: Any, reason: str
) -> None:
    got = _refused(_reply({"num-examples": weight}))
    assert re.search(reason, got), got


def test_missing_num_examples_and_non_scalar_metrics_are_refused() -> None:
    no_weight = RecordDict({"arrays": MODEL, "metrics": MetricRecord({"loss": 0.5})})
    assert _refused(no_weight) == "the reply has no num-examples"
    assert _refused(_reply({"loss": [0.5, 0.25]})) == "metric 'loss' is a list"
    assert _refused(_reply({"loss": float("nan")})) == "metric 'loss' is nan"


def test_metrics_must_be_those_announced() -> None:
    reason = _refused(_reply({"loss": 0.25}))
    assert reason == "metrics differ from those announced on the ledger"


@pytest.mark.parametrize(
    ("records", "kind", "census"),
    [
        ({"more": MetricRecord({"num-examples": 7})}, "train", "1 ArrayRecord(s), 2 MetricRecord"),
        ({"copy": MODEL}, "train", "2 ArrayRecord(s), 1 MetricRecord"),
        ({"arrays": None}, "train", "0 ArrayRecord(s), 1 MetricRecord"),
        ({"metrics": None}, "train", "1 ArrayRecord(s), 0 MetricRecord"),
        ({"config": ConfigRecord({"x": 1})}, "train", "1 ConfigRecord"),
        ({}, "evaluate", "1 ArrayRecord(s), 1 MetricRecord(s), 0 ConfigRecord(s), not one "
         "MetricRecord"),
    ],
)  # fmt: skip
def test_records_must_be_exactly_what_the_task_type_requires(
    records: dict[str, Any], kind: str, census: str
) -> None:
    assert census in _refused(_reply(**records), kind)


def test_a_secagg_reply_holds_only_its_record() -> None:
    check_content("org2", "secagg", RecordDict({SECAGG_RECORD: ConfigRecord()}), MODEL, {})
    check_content("org2", "secagg", RecordDict(), MODEL, {})  # the answer to an abort
    with pytest.raises(UpdateRejected, match="a secure-aggregation reply holds 1 ArrayRecord"):
        check_content("org2", "secagg", RecordDict({"arrays": MODEL}), MODEL, {})


def test_the_odd_reply_out_is_refused_and_a_tie_goes_to_the_aggregators_org() -> None:
    plain, extra = reply_shape(_reply()), reply_shape(_reply({"extra": 1.0}))
    assert inconsistent({"org1": plain, "org2": plain}, "org1") == {}
    odd = inconsistent({"org1": plain, "org2": extra, "org3": plain}, "org9")
    assert list(odd) == ["org2"]
    assert "'extra'" in odd["org2"]
    assert list(inconsistent({"org2": plain, "org3": extra}, "org3")) == ["org2"]
    assert list(inconsistent({"org2": plain, "org3": extra}, "org9")) == ["org3"]
    renamed = reply_shape(RecordDict({"arrayz": MODEL, "metrics": MetricRecord({"a": 1})}))
    assert list(inconsistent({"org1": plain, "org2": renamed, "org3": plain}, "org1")) == ["org2"]


def _declared_float32(values: np.ndarray[Any, Any]) -> Array:
    return Array(dtype="float32", shape=values.shape, stype="numpy.ndarray", data=_npy(values))


@pytest.mark.parametrize(
    ("fake", "reason"),
    [
        (np.ones(3, np.complex64), "array b: its bytes hold complex64 values, not float32[3]"),
        (np.ones(3, np.float64), "array b: its bytes hold float64 values, not float32[3]"),
        (np.ones(3, np.int32), "array b: its bytes hold int32 values, not float32[3]"),
    ],
)
def test_the_dtype_is_read_from_the_bytes(fake: np.ndarray[Any, Any], reason: str) -> None:
    got = ArrayRecord({"w": MODEL["w"], "b": _declared_float32(fake)})
    with pytest.raises(UpdateRejected) as refused:
        validate_reply_arrays("org2", MODEL, got)
    assert refused.value.reason == reason


_GOOD = _npy(np.zeros(3, np.float32))


@pytest.mark.parametrize(
    "array",
    [
        Array(dtype="float32", shape=(3,), stype="numpy.ndarray", data=_GOOD + b"\0" * 4),
        Array(dtype="float32", shape=(3,), stype="torch.Tensor", data=_GOOD),
        _declared_float32(np.zeros(3, dtype=[("a", "<f4")])),
    ],
    ids=["trailing bytes", "another serialization", "structured dtype"],
)
def test_bytes_that_are_not_exactly_one_plain_npy_array_are_refused(array: Array) -> None:
    with pytest.raises(UpdateRejected, match="array b cannot be decoded"):
        validate_reply_arrays("org2", MODEL, ArrayRecord({"w": MODEL["w"], "b": array}))


def test_a_byte_swapped_array_holds_the_same_values_and_passes() -> None:
    swapped = _declared_float32(np.zeros(3, ">f4"))
    validate_reply_arrays("org2", MODEL, ArrayRecord({"w": MODEL["w"], "b": swapped}))
