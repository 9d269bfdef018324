"""An organization's side of the data plane: fetch offered payloads, upload expected ones.

The client always dials out to the aggregator over mTLS with its organization's identity, and
trusts only the aggregator organization's CA for the server certificate. Every gRPC failure is
translated into a fedchain error in one place (:func:`fedchain.transport.status.error_from_rpc`).

Fetched payloads land in one preallocated ``bytearray`` of the announced size, filled in place
while hashed; uploads are sliced from one read-only view of the caller's bytes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, TypeVar

import grpc

from fedchain.errors import (
    DataPlaneBusy,
    FedchainError,
    PayloadError,
    PayloadTooLarge,
    TransportError,
)
from fedchain.hashing import sha256_hex
from fedchain.pki import Consortium, Identity
from fedchain.transport import tls
from fedchain.transport.framing import (
    CHUNK_SIZE,
    SERVICE,
    FetchRequest,
    PayloadBuffer,
    PayloadHeader,
    PingRequest,
    UploadHeader,
    as_byte_view,
    check_sha256,
    chunk_bytes,
    decode_header,
    iter_chunks,
)
from fedchain.transport.handshake import diagnose
from fedchain.transport.presence import AttachLoop, Report, log_report
from fedchain.transport.status import error_from_rpc

__all__ = ["DEFAULT_TIMEOUT", "DataPlaneClient"]

_log = logging.getLogger(__name__)

#: Seconds allowed for one call, whole stream included (a 1 GB model on a slow link).
DEFAULT_TIMEOUT = 600.0
#: Backoff between attempts of a call the server refused as busy (first, longest).
BUSY_BACKOFF = (0.05, 2.0)

T = TypeVar("T")


def _while_busy(operation: Callable[[], T], what: str, timeout: float | None) -> T:
    """Run ``operation``, trying again with backoff while the server answers busy.

    A busy refusal comes before the server reads anything, so trying again is safe; after
    ``timeout`` seconds (or never, if None) of refusals the last DataPlaneBusy propagates.
    """
    delay, give_up = BUSY_BACKOFF[0], None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            return operation()
        except DataPlaneBusy as exc:
            if give_up is not None and time.monotonic() + delay > give_up:
                raise
            _log.info("%s: the aggregator is busy (%s); retrying in %.2f s", what, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, BUSY_BACKOFF[1])


class _Gate:
    """Holds the upload body back until the server has accepted the header."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.accepted = False

    def open(self, accepted: bool) -> None:
        self.accepted = accepted
        self._event.set()

    def wait(self, timeout: float | None) -> bool:
        return self._event.wait(timeout) and self.accepted


class DataPlaneClient:
    """Connects one organization identity to the aggregator's data plane.

    ``channel``: an existing gRPC channel to use instead of dialling ``address``; it is never
    closed by this client. ``server_name`` overrides the TLS host name checked against the
    server certificate. ``insecure_dev``: plaintext to a loopback address only, for debugging.
    """

    def __init__(
        self,
        address: str,
        identity: Identity,
        consortium: Consortium,
        *,
        insecure_dev: bool = False,
        timeout: float | None = DEFAULT_TIMEOUT,
        chunk_size: int = CHUNK_SIZE,
        server_name: str | None = None,
        channel: Any = None,
    ) -> None:
        self.address = address
        self.identity = identity
        self.timeout = timeout
        self._chunk_size = chunk_size
        self._owns_channel = channel is None
        # Refused certificates can be told from an absent server only on our own TLS channel.
        self._diagnose = (
            partial(diagnose, address, identity, consortium, server_name=server_name)
            if channel is None and not insecure_dev
            else None
        )
        if channel is None:
            channel = self._dial(address, identity, consortium, insecure_dev, server_name)
        self._channel = channel
        self._ping = channel.unary_unary(f"/{SERVICE}/Ping")
        self._fetch = channel.unary_stream(f"/{SERVICE}/Fetch")
        self._attach = channel.unary_stream(f"/{SERVICE}/Attach")
        self._upload = channel.stream_stream(f"/{SERVICE}/Upload", request_serializer=chunk_bytes)

    def _dial(
        self,
        address: str,
        identity: Identity,
        consortium: Consortium,
        insecure_dev: bool,
        server_name: str | None,
    ) -> Any:
        options = tls.channel_options(self._chunk_size, server_name)
        if insecure_dev:
            tls.require_loopback(address)
            _log.warning("INSECURE DEV MODE: plaintext data plane to %s", address)
            return grpc.insecure_channel(address, options=options)
        tls.split_address(address)
        creds = tls.channel_credentials(identity, consortium)
        return grpc.secure_channel(address, creds, options=options)

    def close(self) -> None:
        """Close the channel if this client opened it."""
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> DataPlaneClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def attached(self, report: Report | None = None) -> Iterator[AttachLoop]:
        """Stay attached (counted present by the aggregator) for the duration of the block;
        ``report`` hears each change (see :class:`AttachLoop`), else it is logged. A refusal
        ends the loop (its ``ended`` is set and ``refused`` says why)."""
        request = PingRequest(self.identity.org).encode()
        call = partial(self._attach, request)
        loop = AttachLoop(call, report=report or log_report, diagnose=self._diagnose)
        loop.start()
        try:
            yield loop
        finally:
            loop.stop()

    def ping(self) -> str:
        """The organization the server authenticated us as (checks connectivity and identity)."""
        return _while_busy(self._ping_once, "ping", self.timeout)

    def _ping_once(self) -> str:
        try:
            raw = self._ping(PingRequest(self.identity.org).encode(), timeout=self.timeout)
            return str(decode_header(raw, "pong")["org"])
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, "ping") from exc
        except FedchainError as exc:
            raise TransportError(f"ping: malformed answer: {exc}") from exc

    def fetch(self, sha256: str, *, max_size: int) -> bytearray:
        """Download payload ``sha256`` (at most ``max_size`` bytes) and check its digest.

        Raises HashMismatch if the bytes differ from ``sha256``, PayloadTooLarge if over
        ``max_size``, PayloadError if not offered, PeerAuthError if not offered to us,
        ProtocolError if the server breaks the framing, TransportError otherwise.
        """
        check_sha256(sha256)
        if max_size < 0:
            raise PayloadError(f"max_size must be non-negative, not {max_size}")
        return _while_busy(
            lambda: self._fetch_once(sha256, max_size), f"fetch {sha256[:12]}", self.timeout
        )

    def _fetch_once(self, sha256: str, max_size: int) -> bytearray:
        request = FetchRequest(self.identity.org, sha256, max_size).encode()
        stream = self._fetch(request, timeout=self.timeout)
        try:
            buffer = self._receive(sha256, max_size, stream)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, f"fetch {sha256[:12]}") from exc
        finally:
            stream.cancel()  # frees the server early if we stopped reading; no-op when done
        return buffer.finish()

    @staticmethod
    def _receive(sha256: str, max_size: int, stream: Iterator[bytes]) -> PayloadBuffer:
        head = PayloadHeader.decode(next(stream, b""))
        if head.sha256 != sha256:
            raise PayloadError(f"asked for {sha256} but the server announced {head.sha256}")
        if head.size > max_size:
            raise PayloadTooLarge(f"payload {sha256} announces {head.size} > {max_size} bytes")
        buffer = PayloadBuffer(sha256, head.size)
        for chunk in stream:
            buffer.write(chunk)
        return buffer

    def upload(
        self, data: bytes | bytearray | memoryview, sha256: str | None = None, *, task: str
    ) -> None:
        """Send ``data`` (an upload the server expects for ``task``) and wait for receipt.

        ``sha256`` is computed if not given. Nothing beyond the header is sent unless the
        server accepts it: PeerAuthError if unexpected, PayloadTooLarge if over its limit,
        HashMismatch if the bytes do not hash to ``sha256``.
        """
        view = as_byte_view(data)
        digest = sha256_hex(view) if sha256 is None else check_sha256(sha256)
        _while_busy(
            lambda: self._upload_once(view, digest, task), f"upload {digest[:12]}", self.timeout
        )

    def _upload_once(self, view: memoryview, digest: str, task: str) -> None:
        head = UploadHeader(self.identity.org, digest, len(view), task).encode()
        gate = _Gate()
        try:
            answers = self._upload(self._body(head, view, gate), timeout=self.timeout)
            decode_header(next(answers), "accepted")
            gate.open(True)
            receipt = decode_header(next(answers), "received")
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, f"upload {digest[:12]}") from exc
        except (StopIteration, FedchainError) as exc:
            raise TransportError(f"upload {digest[:12]}: malformed answer: {exc}") from exc
        finally:
            gate.open(gate.accepted)  # releases a body generator still waiting
        if receipt.get("sha256") != digest:
            raise TransportError(f"upload {digest[:12]}: the receipt names another payload")

    def _body(self, head: bytes, view: memoryview, gate: _Gate) -> Iterator[bytes | memoryview]:
        """Request stream of an upload: the header, then (once accepted) the chunks."""
        yield head
        if gate.wait(self.timeout):
            yield from iter_chunks(view, self._chunk_size)
