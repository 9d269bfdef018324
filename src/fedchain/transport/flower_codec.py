"""Flower ``Message`` <-> bytes, in Flower's own protobuf serialization (flwr 1.41).

``flwr.common.serde.message_to_proto`` carries the whole message: metadata (run id, node ids,
``message_type``, ``group_id``, ``reply_to_message_id``, ``created_at``, ``ttl``, task ids) and
the content ``RecordDict`` with every ``ArrayRecord``'s array bytes inline
(``flwr.proto.recorddict_pb2.Array.data``), every ``MetricRecord`` and ``ConfigRecord`` — or
the error of an error reply. (Flower's own runtime instead deflates messages into an object
tree of ``ArrayChunk`` objects pushed one by one; that is a transport detail we do not need:
the data plane already streams and content-addresses the encoded bytes.)

Serialization is deterministic (``SerializeToString(deterministic=True)``), so the same
message always encodes to the same bytes — and to the same SHA-256 on the ledger.

Cost and limits: encoding holds the message, its protobuf form and the output bytes at once
(about 3x the array bytes at peak; decoding about 2x). Protobuf refuses messages of 2 GiB and
more, so a single Flower message must stay under that size. The protobuf form is built in place
(:func:`_message_proto`) rather than with ``message_to_proto``: Flower's builds each level from
keyword arguments, and with the upb backend every level deep-copies the array bytes (four
copies of a 40 MB model cost ~0.9 s here; in place, one copy, ~0.1 s). The fields set are the
same, so the bytes are identical to Flower's serialization (a test checks it).
"""

from __future__ import annotations

from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.common.serde import config_record_to_proto, message_from_proto, metric_record_to_proto
from flwr.common.serde_utils import error_to_proto, metadata_to_proto
from flwr.proto.message_pb2 import Message as ProtoMessage
from google.protobuf.message import DecodeError

from fedchain.errors import InternalError, ProtocolError

__all__ = ["decode_message", "encode_message"]


def encode_message(msg: Message) -> bytes:
    """Serialize ``msg`` (metadata, content or error) with Flower's protobuf schema."""
    try:
        return bytes(_message_proto(msg).SerializeToString(deterministic=True))
    except (ValueError, TypeError) as exc:  # unsupported record values: a local bug
        raise InternalError(f"cannot encode Flower message: {exc}") from exc


def _message_proto(msg: Message) -> Any:
    """``flwr.common.serde.message_to_proto(msg)``, with each array's bytes copied once."""
    proto: Any = ProtoMessage()
    proto.metadata.CopyFrom(metadata_to_proto(msg.metadata))
    if msg.has_content():
        proto.content.SetInParent()
        for key, record in msg.content.items():
            item = proto.content.items.add(key=key)
            if isinstance(record, ArrayRecord):
                item.array_record.SetInParent()
                for name, array in record.items():
                    value = item.array_record.items.add(key=name).value
                    value.dtype, value.stype, value.data = array.dtype, array.stype, array.data
                    value.shape.extend(array.shape)
            elif isinstance(record, MetricRecord):
                item.metric_record.CopyFrom(metric_record_to_proto(record))
            elif isinstance(record, ConfigRecord):
                item.config_record.CopyFrom(config_record_to_proto(record))
            else:
                raise TypeError(f"unsupported record type: {type(record).__name__}")
    if msg.has_error():
        proto.error.CopyFrom(error_to_proto(msg.error))
    return proto


def decode_message(data: bytes | bytearray | memoryview) -> Message:
    """Parse bytes from a peer into a Flower ``Message`` (ProtocolError if malformed)."""
    try:
        proto: Any = ProtoMessage.FromString(data)
        if not proto.HasField("metadata"):
            raise ProtocolError("Flower message without metadata")
        message = message_from_proto(proto)
    except (DecodeError, ValueError, TypeError, KeyError) as exc:
        raise ProtocolError(f"malformed Flower message: {exc}") from exc
    if not isinstance(message, Message):
        raise ProtocolError("bytes did not decode to a Flower Message")
    return message
