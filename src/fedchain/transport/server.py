"""The aggregator's side of the data plane: the ``fedchain.DataPlane`` gRPC service.

Organizations always dial out to this server. Methods (no protoc: generic handlers, raw bytes,
a JSON header first — see :mod:`fedchain.transport.framing`):

``Ping``   (unary)          ``ping`` header -> ``pong`` header naming the caller's org as the
                            server sees it.
``Fetch``  (server stream)  ``fetch`` header -> ``payload`` header, then the chunks. Only a
                            payload :meth:`DataPlaneServer.offer`-ed to the caller's org.
``Upload`` (bidi stream)    ``upload`` header -> ``accepted`` | refusal; then the chunks ->
                            ``received``. The go-ahead means a payload the server does not
                            :meth:`DataPlaneServer.expect` is refused before a single body byte
                            is sent ("unselected replies are never transferred").

Every request names its sender (``org``); it must equal the organization of the verified client
certificate, or the call fails with UNAUTHENTICATED.

Calls are limited per organization and overall, and a stream that moves nothing for a while is
cut (:mod:`fedchain.transport.limits`): one organization cannot starve the others.

.. warning::
   ``insecure_dev=True`` serves **plaintext** gRPC and **trusts the org a caller claims**. It
   binds loopback addresses only and is meant for local debugging, never for a deployment.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from concurrent.futures import Future
from typing import Any, NoReturn, Protocol, TypeVar

import grpc

from fedchain.errors import DataPlaneBusy, FedchainError, PayloadTooLarge, TransportError
from fedchain.pki import Consortium, Identity
from fedchain.transport import tls
from fedchain.transport.framing import (
    CHUNK_SIZE,
    SERVICE,
    FetchRequest,
    PayloadHeader,
    PingRequest,
    UploadHeader,
    encode_header,
)
from fedchain.transport.limits import Admission, CallLimits, IdleWatch
from fedchain.transport.presence import HEARTBEAT_S, Presence
from fedchain.transport.registry import PayloadRegistry
from fedchain.transport.status import code_for

__all__ = ["SERVICE", "DataPlaneServer"]

_log = logging.getLogger(__name__)


def _abort(context: Any, error: FedchainError) -> NoReturn:
    """End the call with the status mapped from ``error`` (context.abort raises)."""
    context.abort(code_for(error), str(error))
    raise TransportError("grpc context.abort returned")  # pragma: no cover


def _deny(context: Any, message: str) -> NoReturn:
    """End the call as UNAUTHENTICATED: the caller is not who its request says."""
    context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
    raise TransportError("grpc context.abort returned")  # pragma: no cover


class _Claim(Protocol):
    """A request header naming its sender."""

    @property
    def org(self) -> str: ...


_H = TypeVar("_H", bound=_Claim)


class _DataPlaneService:
    """The RPC handlers; state lives in the registry."""

    def __init__(
        self,
        consortium: Consortium,
        registry: PayloadRegistry,
        insecure: bool,
        limits: CallLimits,
    ) -> None:
        self._consortium = consortium
        self._registry = registry
        self._insecure = insecure
        self.presence = Presence()
        self.admission = Admission(limits.per_org)
        self.idle = IdleWatch(limits.idle_s)
        # An attached organization must never look idle: beat well within the idle deadline.
        self._heartbeat = min(HEARTBEAT_S, limits.idle_s / 2)

    def _admit(self, context: Any, org: str) -> None:
        """Count the call against ``org``'s limit until it ends (RESOURCE_EXHAUSTED if over)."""
        try:
            self.admission.enter(org)
        except DataPlaneBusy as exc:
            _log.warning("refused a call from %s: %s", org, exc)
            _abort(context, exc)
        if not context.add_callback(lambda: self.admission.leave(org)):
            self.admission.leave(org)  # the call had already ended

    def _caller(self, context: Any) -> str | None:
        """The org of the verified client certificate, admitted (None in insecure_dev mode).

        Decided before any request byte is read, so a caller over its limit is refused before
        it can hold a worker waiting for a header.
        """
        if self._insecure:
            return None
        try:
            certified = tls.peer_org(context, self._consortium)
        except FedchainError as exc:
            _deny(context, f"client certificate refused: {exc}")
        self._admit(context, certified)
        return certified

    def _claim(
        self, context: Any, certified: str | None, raw: bytes, decode: Callable[[bytes], _H]
    ) -> tuple[str, _H]:
        """The caller's org and its request header; the header's claim must match the caller.

        With mTLS the org comes from the verified certificate (:meth:`_caller`); in
        insecure_dev mode the claim of any member org is taken at its word, and admitted here.
        """
        try:
            head = decode(raw)
        except FedchainError as exc:
            _abort(context, exc)
        if certified is None and head.org not in self._consortium.cas:
            _deny(context, f"request claims org {head.org!r}, which is not a member")
        if certified is not None and head.org != certified:
            _deny(context, f"request claims org {head.org!r} but the caller is {certified!r}")
        if certified is None:
            self._admit(context, head.org)
        return head.org, head

    def _identify(self, context: Any, raw: bytes, decode: Callable[[bytes], _H]) -> tuple[str, _H]:
        """:meth:`_caller` then :meth:`_claim`, for calls whose request is already read."""
        return self._claim(context, self._caller(context), raw, decode)

    def _watched(self, context: Any, messages: Iterator[bytes]) -> Iterator[bytes]:
        """``messages`` (a request stream) touching the idle watch of the call at each one."""
        for message in messages:
            self.idle.touch(context)
            yield message

    def _sending(self, context: Any, what: str, answers: Iterator[bytes]) -> Iterator[bytes]:
        """Answers of a streaming call under the idle watch; a cut call ends quietly."""
        self.idle.watch(context, what)
        try:
            for answer in answers:
                yield answer
                self.idle.touch(context)  # the peer took it
        except grpc.RpcError:
            _log.debug("%s ended by cancellation", what)

    def ping(self, request: bytes, context: Any) -> bytes:
        """Answer the caller's organization as authenticated here."""
        org, _ = self._identify(context, request, PingRequest.decode)
        return encode_header("pong", org=org)

    def fetch(self, request: bytes, context: Any) -> Iterator[bytes]:
        """Stream an offered payload (under the idle watch)."""
        return self._sending(context, "a Fetch call", self._fetch(request, context))

    def _fetch(self, request: bytes, context: Any) -> Iterator[bytes]:
        """Header, then chunks shared with concurrent fetches."""
        org, ask = self._identify(context, request, FetchRequest.decode)
        try:
            payload = self._registry.open_offer(org, ask.sha256)
            if payload.size > ask.max_size:
                raise PayloadTooLarge(
                    f"payload {ask.sha256} has {payload.size} bytes, over the caller's "
                    f"{ask.max_size}"
                )
        except FedchainError as exc:
            _abort(context, exc)
        _log.debug("fetch %s (%d bytes) by %s", ask.sha256[:12], payload.size, org)
        yield PayloadHeader(ask.sha256, payload.size).encode()
        yield from payload  # closes the reader if the call ends early

    def upload(self, requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
        """Accept an expected upload (under the idle watch, header wait included)."""
        answers = self._upload(self._watched(context, requests), context)
        return self._sending(context, "an Upload call", answers)

    def _upload(self, requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
        """Refuse or go ahead on the header, then fill and check."""
        certified = self._caller(context)
        org, head = self._claim(context, certified, next(requests, b""), UploadHeader.decode)
        try:
            sink = self._registry.begin_upload(org, head.sha256, head.size)
        except FedchainError as exc:
            _abort(context, exc)
        yield encode_header("accepted", sha256=head.sha256)
        try:
            for chunk in requests:
                sink.write(chunk)
            sink.finish()
        except FedchainError as exc:
            _log.warning("upload %s from %s refused: %s", head.sha256[:12], org, exc)
            _abort(context, exc)
        finally:
            sink.abort()  # no-op once finished or failed; reopens after a broken transfer
        _log.debug(
            "upload %s (%d bytes) from %s, task %s", head.sha256[:12], head.size, org, head.task
        )
        yield encode_header("received", sha256=head.sha256)

    def attach(self, request: bytes, context: Any) -> Iterator[bytes]:
        """Hold the caller present until the call ends (under the idle watch)."""
        return self._sending(context, "an Attach call", self._attach(request, context))

    def _attach(self, request: bytes, context: Any) -> Iterator[bytes]:
        """Heartbeats let both sides notice loss; a reader that stops reading is cut."""
        org, _ = self._identify(context, request, PingRequest.decode)
        ended = threading.Event()
        context.add_callback(ended.set)
        with self.presence.attached(org):
            yield encode_header("attached", org=org)
            while not ended.wait(self._heartbeat) and context.is_active():
                yield encode_header("heartbeat", org=org)

    def handler(self) -> Any:
        """The generic handler registering the three methods under :data:`SERVICE`."""
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Ping": grpc.unary_unary_rpc_method_handler(self.ping),
                "Fetch": grpc.unary_stream_rpc_method_handler(self.fetch),
                "Upload": grpc.stream_stream_rpc_method_handler(self.upload),
                "Attach": grpc.unary_stream_rpc_method_handler(self.attach),
            },
        )


class DataPlaneServer:
    """The data-plane server hosted by ``fedchain-server`` (see the module docstring).

    ``shared_chunks``: per offered payload, how many chunks (of ``chunk_size`` bytes)
    organizations fetching it at the same time may share instead of each copying them
    (:mod:`fedchain.transport.chunks`): extra memory for less copying; 0 shares none.
    """

    def __init__(
        self,
        identity: Identity,
        consortium: Consortium,
        *,
        max_payload_bytes: int,
        insecure_dev: bool = False,
        chunk_size: int = CHUNK_SIZE,
        limits: CallLimits | None = None,
        shared_chunks: int = 16,
    ) -> None:
        self.identity = identity
        self.consortium = consortium
        self.insecure_dev = insecure_dev
        self.chunk_size = chunk_size
        self._registry = PayloadRegistry(max_payload_bytes, chunk_size, shared_chunks)
        self.limits = limits or CallLimits()
        self._service = _DataPlaneService(consortium, self._registry, insecure_dev, self.limits)
        # One worker per call allowed to run: an admitted call never waits for a thread.
        self._max_calls = self.limits.total_for(len(consortium.cas))
        self._server: Any = None

    def start(self, address: str) -> int:
        """Bind ``address`` (e.g. ``"127.0.0.1:0"``), start serving, return the bound port."""
        if self._server is not None:
            raise TransportError("the data-plane server is already started")
        if self.insecure_dev:
            tls.require_loopback(address)
        else:
            tls.split_address(address)
        server = grpc.server(
            futures.ThreadPoolExecutor(self._max_calls, thread_name_prefix="dataplane"),
            handlers=[self._service.handler()],
            options=tls.server_options(self.chunk_size),
            maximum_concurrent_rpcs=self._max_calls,
        )
        try:
            if self.insecure_dev:
                _log.warning(
                    "INSECURE DEV MODE: plaintext data plane on %s; claims trusted", address
                )
                port = server.add_insecure_port(address)
            else:
                port = server.add_secure_port(
                    address, tls.server_credentials(self.identity, self.consortium)
                )
        except RuntimeError as exc:
            raise TransportError(f"cannot bind the data plane to {address}: {exc}") from exc
        if not port:
            raise TransportError(f"cannot bind the data plane to {address}")
        server.start()
        self._server = server
        return int(port)

    def stop(self, grace: float | None = None) -> None:
        """Stop serving; running calls get ``grace`` seconds to finish. Offers are cleared."""
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None
        self._service.idle.stop()
        self._registry.clear()

    def __enter__(self) -> DataPlaneServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(None)

    # -- payload table (see fedchain.transport.registry) -----------------------------------

    def offer(
        self,
        sha256: str,
        data: bytes | bytearray | memoryview,
        allowed_orgs: Iterable[str],
        *,
        verify: bool = True,
    ) -> None:
        """Serve ``data`` (kept by reference) under ``sha256`` to ``allowed_orgs``."""
        self._registry.offer(sha256, data, allowed_orgs, verify=verify)

    def expect(self, org: str, sha256: str, max_size: int | None = None) -> Future[bytearray]:
        """Accept one upload of ``sha256`` from ``org``; the future yields its bytes.

        The future fails with PayloadTooLarge or HashMismatch when the org sends a payload
        that can never be right; ``future.cancel()`` withdraws the expectation.
        """
        return self._registry.expect(org, sha256, max_size)

    def present(self) -> frozenset[str]:
        """Organizations currently attached (``fedchain-client`` processes that are up)."""
        return self._service.presence.orgs()

    def running(self, org: str) -> int:
        """Data-plane calls of ``org`` admitted and not yet ended (counted against its limit)."""
        return self._service.admission.running(org)

    def wait_running(self, org: str, count: int, timeout: float | None = None) -> bool:
        """Wait until ``org`` has exactly ``count`` calls running; False after ``timeout`` s."""
        return self._service.admission.wait_running(org, count, timeout)

    @property
    def presence_changed(self) -> threading.Condition:
        """Notified whenever an organization attaches or detaches."""
        return self._service.presence.changed

    def withdraw(self, sha256: str) -> None:
        """Stop offering ``sha256`` and cancel its expectations (memory freed after transfers)."""
        self._registry.withdraw(sha256)

    def clear(self) -> None:
        """Withdraw every offer and expectation (end of a round)."""
        self._registry.clear()

    def offered(self) -> frozenset[str]:
        """Digests currently offered."""
        return self._registry.offered()

    def expected(self) -> frozenset[tuple[str, str]]:
        """``(org, sha256)`` uploads still awaited."""
        return self._registry.expected()
