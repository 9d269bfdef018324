"""Flower messages survive fedchain's wire encoding: content, metadata and errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Error,
    Message,
    Metadata,
    MetricRecord,
    RecordDict,
)

from fedchain.errors import ProtocolError
from fedchain.hashing import sha256_hex
from fedchain.transport.flower_codec import decode_message, encode_message

ARRAYS: dict[str, np.ndarray[Any, Any]] = {
    "conv.weight": np.random.default_rng(1).standard_normal((4, 3, 3, 3)).astype(np.float32),
    "conv.bias": np.linspace(-1.0, 1.0, 4, dtype=np.float64),
    "steps": np.array([[1, 2], [3, 4]], dtype=np.int64),
    "mask": np.array([True, False, True]),
    "scalar": np.array(3.5, dtype=np.float16),
}


def _metadata(**overrides: object) -> Metadata:
    fields: dict[str, object] = {
        "run_id": 12,
        "message_id": "a1" * 32,
        "src_node_id": 1,
        "dst_node_id": 2002,
        "reply_to_message_id": "",
        "group_id": "round-3",
        "created_at": 1_700_000_000.25,
        "ttl": 600.0,
        "message_type": "train",
        "src_task_id": 4,
        "dst_task_id": 5,
    }
    fields.update(overrides)
    return Metadata(**fields)  # type: ignore[arg-type]


def _message(
    metadata: Metadata, *, content: RecordDict | None = None, error: Error | None = None
) -> Message:
    """A message with explicit metadata, as Flower's runtime builds them (not a typed overload)."""
    return Message(metadata=metadata, content=content, error=error)  # type: ignore[call-overload,no-any-return]


def _content() -> RecordDict:
    return RecordDict(
        {
            "arrays": ArrayRecord({k: Array(v.copy()) for k, v in ARRAYS.items()}),
            "metrics": MetricRecord({"num-examples": 120, "loss": 0.25, "accs": [0.5, 0.75]}),
            "config": ConfigRecord(
                {
                    "lr": 0.01,
                    "local-epochs": 2,
                    "proximal": True,
                    "tag": "fedchain",
                    "blob": b"\x00\xff",
                    "names": ["a", "b"],
                }
            ),
        }
    )


def _assert_same_content(got: RecordDict, want: RecordDict) -> None:
    assert list(got.keys()) == list(want.keys())
    arrays = got.array_records["arrays"]
    assert list(arrays.keys()) == list(ARRAYS)
    for key, expected in ARRAYS.items():
        actual = arrays[key].numpy()
        assert actual.dtype == expected.dtype
        assert actual.shape == expected.shape
        np.testing.assert_array_equal(actual, expected)
    assert dict(got.metric_records["metrics"]) == dict(want.metric_records["metrics"])
    assert dict(got.config_records["config"]) == dict(want.config_records["config"])


def test_instruction_round_trip_keeps_content_and_metadata() -> None:
    msg = _message(_metadata(), content=_content())
    decoded = decode_message(encode_message(msg))
    assert decoded.metadata == msg.metadata
    assert decoded.metadata.message_type == "train"
    assert decoded.metadata.group_id == "round-3"
    _assert_same_content(decoded.content, msg.content)
    # Flower's own content address of the arrays is unchanged by the trip.
    assert decoded.content["arrays"].object_id == msg.content["arrays"].object_id


def test_reply_round_trip_keeps_reply_to() -> None:
    instruction = _message(_metadata(), content=_content())
    reply = Message(_content(), reply_to=instruction)
    decoded = decode_message(bytearray(encode_message(reply)))  # as fetch() returns it
    assert decoded.metadata.reply_to_message_id == instruction.metadata.message_id
    assert decoded.metadata.dst_node_id == instruction.metadata.src_node_id
    assert decoded.metadata.src_node_id == instruction.metadata.dst_node_id
    assert decoded.metadata.group_id == "round-3"
    assert decoded.metadata == reply.metadata
    _assert_same_content(decoded.content, reply.content)


def test_error_reply_round_trip() -> None:
    msg = _message(_metadata(message_type="evaluate"), error=Error(code=7, reason="oom"))
    decoded = decode_message(memoryview(encode_message(msg)))
    assert decoded.has_error()
    assert not decoded.has_content()
    assert (decoded.error.code, decoded.error.reason) == (7, "oom")
    assert decoded.metadata.message_type == "evaluate"


def test_encoding_is_deterministic_and_carries_the_array_bytes() -> None:
    first = encode_message(_message(_metadata(), content=_content()))
    second = encode_message(_message(_metadata(), content=_content()))
    assert first == second
    assert sha256_hex(first) == sha256_hex(second)
    array_bytes = sum(v.nbytes for v in ARRAYS.values())
    assert len(first) > array_bytes  # the data is inline, not a reference to other objects
    changed = _content()
    changed.array_records["arrays"]["conv.bias"] = Array(np.zeros(4))
    assert encode_message(_message(_metadata(), content=changed)) != first


@pytest.mark.parametrize("garbage", [b"\xff\xff\xff\xff", b"not a message", b""])
def test_malformed_bytes_are_a_protocol_error(garbage: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_message(garbage)


def test_truncated_message_is_a_protocol_error() -> None:
    data = encode_message(_message(_metadata(), content=_content()))
    with pytest.raises(ProtocolError):
        decode_message(data[: len(data) // 2])


@pytest.mark.parametrize(
    "content",
    [
        _content(),
        RecordDict(),
        RecordDict({"empty": ArrayRecord(), "m": MetricRecord({"num-examples": 3})}),
    ],
    ids=["arrays-metrics-config", "empty", "empty-arrayrecord"],
)
def test_bytes_are_flowers_own_serialization(content: RecordDict) -> None:
    """The in-place encoder writes exactly what Flower's ``message_to_proto`` would."""
    from flwr.common.serde import message_to_proto

    for msg in (
        _message(_metadata(), content=content),
        _message(_metadata(), error=Error(code=3, reason="failed")),
    ):
        flowers = message_to_proto(msg).SerializeToString(deterministic=True)
        assert encode_message(msg) == flowers
