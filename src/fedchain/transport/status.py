"""The one mapping between fedchain errors and gRPC status codes, in both directions.

The server turns a refusal (a fedchain error raised by the registry or the framing) into a
status code with :func:`code_for`; the client turns a :class:`grpc.RpcError` back into a
fedchain error with :func:`error_from_rpc`. Keeping both tables here keeps them consistent.

======================  ===================  =====================================
status code             client raises        meaning
======================  ===================  =====================================
UNAUTHENTICATED         PeerAuthError        certificate unusable or claim differs
PERMISSION_DENIED       PeerAuthError        not offered to / not expected from you
NOT_FOUND               PayloadError         no such payload offered
RESOURCE_EXHAUSTED      DataPlaneBusy        ``busy: ...``: over a call limit (retry later)
RESOURCE_EXHAUSTED      PayloadTooLarge      otherwise: over a size limit
DATA_LOSS               HashMismatch         bytes do not hash to their digest
anything else           TransportError       (INVALID_ARGUMENT, UNAVAILABLE, ...)
======================  ===================  =====================================
"""

from __future__ import annotations

from typing import Any

import grpc

from fedchain.errors import (
    DataPlaneBusy,
    FedchainError,
    HashMismatch,
    PayloadError,
    PayloadTooLarge,
    PeerAuthError,
    PKIError,
    ProtocolError,
    TransportError,
)

__all__ = ["code_for", "error_from_rpc"]

# Most specific first: the first matching class wins.
_CODES: tuple[tuple[type[FedchainError], Any], ...] = (
    (PKIError, grpc.StatusCode.UNAUTHENTICATED),
    (DataPlaneBusy, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (HashMismatch, grpc.StatusCode.DATA_LOSS),
    (PayloadTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (PayloadError, grpc.StatusCode.NOT_FOUND),
    (PeerAuthError, grpc.StatusCode.PERMISSION_DENIED),
    (ProtocolError, grpc.StatusCode.INVALID_ARGUMENT),
    (TransportError, grpc.StatusCode.FAILED_PRECONDITION),
)

_ERRORS: dict[Any, type[TransportError]] = {
    grpc.StatusCode.UNAUTHENTICATED: PeerAuthError,
    grpc.StatusCode.PERMISSION_DENIED: PeerAuthError,
    grpc.StatusCode.NOT_FOUND: PayloadError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: PayloadTooLarge,
    grpc.StatusCode.DATA_LOSS: HashMismatch,
}


def code_for(error: FedchainError) -> Any:
    """The ``grpc.StatusCode`` a server answers for ``error`` (INTERNAL if unmapped)."""
    for cls, code in _CODES:
        if isinstance(error, cls):
            return code
    return grpc.StatusCode.INTERNAL


# Ours start with "busy:"; gRPC's own refusal over maximum_concurrent_rpcs reads
# "Concurrent RPC limit exceeded!".
_BUSY_MARKS = ("busy:", "Concurrent RPC limit exceeded")


def _is_busy(details: str | None) -> bool:
    return bool(details) and str(details).startswith(_BUSY_MARKS)


def error_from_rpc(exc: grpc.RpcError, what: str) -> TransportError:
    """Translate a failed call into the matching fedchain error (the caller raises it)."""
    code = exc.code() if isinstance(exc, grpc.Call) else None
    details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
    name = code.name if code is not None else "UNKNOWN"
    cls = _ERRORS.get(code, TransportError)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and _is_busy(details):
        cls = DataPlaneBusy
    return cls(f"{what} failed: {name}: {details}")
