"""Flower messages on the wire: task payloads, replies, and the metadata fedchain vouches for.

A task payload is the Flower serialization of a *template* message (content, type, group) that
is byte-identical for every recipient of the same content, so the ledger shows at a glance
that every organization was sent the same model (G4). Identifiers that differ per recipient
(message id, node ids) are derived from the ledger task and set on arrival, never trusted from
the other side.
"""

from __future__ import annotations

import hashlib
import math
from typing import cast

from flwr.app import ArrayRecord, Message, RecordDict
from flwr.app import Metadata as FlowerMetadata
from flwr.supercore.task_identity import TaskIdentity

from fedchain.runtime.rounds import finite_metrics
from fedchain.transport.flower_codec import decode_message, encode_message

__all__ = [
    "AGGREGATOR_NODE_ID",
    "bind_task_identity",
    "decode_payload",
    "encode_payload",
    "message_id",
    "num_examples",
    "run_number",
    "single_arrays",
    "small_metrics",
    "with_metadata",
]

AGGREGATOR_NODE_ID = 1


def bind_task_identity(run_id: int, node_id: int) -> None:
    """Tell Flower which run and node this process acts for (it stamps new messages with it)."""
    TaskIdentity.task_id = 1
    TaskIdentity.run_id = run_id
    TaskIdentity.node_id = node_id


def message_id(task: str, org: str) -> str:
    """The Flower message id of a task's message to ``org`` (a pure function of the ledger)."""
    return f"{task}/{org}"


def run_number(run: str) -> int:
    """Flower's integer run id for a fedchain run id."""
    return int.from_bytes(hashlib.sha256(run.encode()).digest()[:8], "big") >> 1


def encode_payload(content: RecordDict, message_type: str, group_id: str, ttl: float) -> bytes:
    """Serialize a template message carrying ``content`` (same bytes for every recipient)."""
    template = Message(content, 0, message_type, ttl=ttl, group_id=group_id)
    template.metadata.created_at = 0.0
    return encode_message(template)


def decode_payload(data: bytes | bytearray) -> Message:
    """Inverse of :func:`encode_payload` / of a client's reply serialization."""
    return decode_message(data)


def with_metadata(
    message: Message,
    *,
    run_id: int | None = None,
    message_id: str | None = None,
    src_node_id: int | None = None,
    dst_node_id: int | None = None,
    reply_to_message_id: str | None = None,
    group_id: str | None = None,
    message_type: str | None = None,
) -> Message:
    """A copy of ``message`` (same content or error) with the given metadata fields replaced."""
    md = message.metadata
    metadata = FlowerMetadata(
        run_id=md.run_id if run_id is None else run_id,
        message_id=md.message_id if message_id is None else message_id,
        src_node_id=md.src_node_id if src_node_id is None else src_node_id,
        dst_node_id=md.dst_node_id if dst_node_id is None else dst_node_id,
        reply_to_message_id=(
            md.reply_to_message_id if reply_to_message_id is None else reply_to_message_id
        ),
        group_id=md.group_id if group_id is None else group_id,
        created_at=md.created_at,
        ttl=md.ttl,
        message_type=md.message_type if message_type is None else message_type,
    )
    # Flower's typed overloads omit ``metadata=``, the constructor's own way to set every field.
    if message.has_error():
        copy = Message(error=message.error, metadata=metadata)  # type: ignore[call-overload]
    else:
        copy = Message(content=message.content, metadata=metadata)  # type: ignore[call-overload]
    return cast(Message, copy)


def single_arrays(content: RecordDict) -> ArrayRecord | None:
    """The content's ArrayRecord when it holds exactly one (the model), else None."""
    arrays = list(content.array_records.values())
    return arrays[0] if len(arrays) == 1 else None


def num_examples(content: RecordDict) -> int:
    """The ``num-examples`` a reply reports (Flower's convention), 0 when absent or invalid
    (negative, NaN or infinite: ``int(inf)`` raised OverflowError and killed the client)."""
    for record in content.metric_records.values():
        value = record.get("num-examples")
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if value >= 0 and math.isfinite(value):
            return int(value)
    return 0


def small_metrics(content: RecordDict) -> dict[str, float]:
    """Scalar, finite metrics of a reply, at most 64, for the ``update`` record."""
    return finite_metrics(*content.metric_records.values())
