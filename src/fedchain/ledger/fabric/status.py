"""Rich gRPC error details: ``google.rpc.Status`` with ``gateway.ErrorDetail`` per peer.

A Fabric Gateway reports why an endorsement or submission failed in the
``grpc-status-details-bin`` trailer: a serialized ``google.rpc.Status`` whose ``details`` are
``google.protobuf.Any`` values wrapping one ``gateway.ErrorDetail{address, msp_id, message}``
per endorsing peer or orderer (the chaincode's own error message is in there).

``google.rpc.Status`` lives in googleapis-common-protos, which fedchain does not depend on (its
newest releases pull protobuf 7, see docs/fabric.md). The message is three fields, so it is
declared here in a private descriptor pool: no clash if that package is installed too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

import grpc
from fabric_protos.gateway import gateway_pb2
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

__all__ = [
    "DETAILS_KEY",
    "Detail",
    "encode_status",
    "error_details",
    "messages",
    "status_code_name",
]

DETAILS_KEY: Final = "grpc-status-details-bin"
_ERROR_DETAIL_URL: Final = "type.googleapis.com/gateway.ErrorDetail"

#: One peer's (or orderer's) report: ``(address, msp_id, message)``.
Detail = tuple[str, str, str]


def _status_class() -> Any:
    """Build ``google.rpc.Status`` in a private pool (the field numbers of status.proto)."""
    pool = descriptor_pool.DescriptorPool()
    any_file = descriptor_pb2.FileDescriptorProto()
    any_pb2.DESCRIPTOR.CopyToProto(any_file)
    pool.Add(any_file)
    status_file = descriptor_pb2.FileDescriptorProto(
        name="fedchain/google_rpc_status.proto",
        package="google.rpc",
        syntax="proto3",
        dependency=[any_file.name],
    )
    message = status_file.message_type.add(name="Status")
    field = descriptor_pb2.FieldDescriptorProto
    message.field.add(name="code", number=1, type=field.TYPE_INT32, label=field.LABEL_OPTIONAL)
    message.field.add(name="message", number=2, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    message.field.add(
        name="details", number=3, type=field.TYPE_MESSAGE, label=field.LABEL_REPEATED,
        type_name=".google.protobuf.Any",
    )  # fmt: skip
    pool.Add(status_file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.Status"))


_Status: Final = _status_class()


def status_code_name(error: grpc.RpcError) -> str | None:
    """The gRPC status name of ``error`` (``"UNAVAILABLE"``...), or None if it has none."""
    code = error.code() if isinstance(error, grpc.Call) else None
    return code.name if isinstance(code, grpc.StatusCode) else None


def error_details(error: grpc.RpcError) -> tuple[Detail, ...]:
    """The per-peer messages in ``error``'s status details trailer (empty if there are none).

    A trailer that does not parse is ignored: the status code and message still tell the story,
    and a malformed optional trailer must not hide the real error behind a decoding one.
    """
    if not isinstance(error, grpc.Call):
        return ()
    for key, value in error.trailing_metadata() or ():
        if key == DETAILS_KEY and isinstance(value, bytes):
            return _decode_details(value)
    return ()


def _decode_details(raw: bytes) -> tuple[Detail, ...]:
    status = _Status()
    found: list[Detail] = []
    try:
        status.ParseFromString(raw)
        for item in status.details:
            if item.type_url.rsplit("/", 1)[-1] == "gateway.ErrorDetail":
                detail = gateway_pb2.ErrorDetail.FromString(item.value)
                found.append((str(detail.address), str(detail.msp_id), str(detail.message)))
    except DecodeError:  # a malformed trailer: keep what parsed, see error_details
        pass
    return tuple(found)


def encode_status(code: grpc.StatusCode, message: str, details: Iterable[Detail]) -> bytes:
    """Serialize a ``google.rpc.Status`` carrying ``gateway.ErrorDetail`` values.

    What a gateway puts in the ``grpc-status-details-bin`` trailer; used by the test gateway
    and by tests of :func:`error_details`.
    """
    status = _Status(code=code.value[0], message=message)
    for address, msp_id, text in details:
        detail = gateway_pb2.ErrorDetail(address=address, msp_id=msp_id, message=text)
        status.details.add(type_url=_ERROR_DETAIL_URL, value=detail.SerializeToString())
    data: bytes = status.SerializeToString()
    return data


def messages(details: Sequence[Detail]) -> list[str]:
    """Just the messages of ``details``, in order."""
    return [message for _, _, message in details]
