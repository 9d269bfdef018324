"""What the aggregator serves and what it will accept: offers and expected uploads.

The registry is the data plane's state without the network: the gRPC service asks it whether
an authenticated organization may fetch a payload (:meth:`PayloadRegistry.open_offer`) or may
start an upload (:meth:`PayloadRegistry.begin_upload`), and it answers with the payload's
shared chunks or a sink, or a fedchain error that the service turns into a gRPC status.

An offered payload is held once, by reference, however many organizations it is offered to;
organizations fetching it at the same time share each chunk's copy
(:class:`~fedchain.transport.chunks.SharedChunks`).

An expectation is keyed by ``(org, sha256)`` (two organizations may legitimately send identical
bytes) and fulfils a :class:`concurrent.futures.Future`. A content-addressed payload that is
refused for its size or its digest cannot become right on a retry, so those refusals fail the
future (the waiter learns why, and can record it); an interrupted or truncated transfer only
reopens the slot for another attempt. Cancelling the future withdraws the expectation.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field

from fedchain.errors import (
    HashMismatch,
    PayloadError,
    PayloadTooLarge,
    PeerAuthError,
    TransportError,
)
from fedchain.hashing import sha256_hex
from fedchain.transport.chunks import SharedChunks
from fedchain.transport.framing import CHUNK_SIZE, PayloadBuffer, as_byte_view, check_sha256

__all__ = ["PayloadRegistry", "UploadSink"]


@dataclass(frozen=True)
class _Offer:
    payload: SharedChunks
    orgs: frozenset[str]


@dataclass(eq=False)
class _Slot:
    org: str
    sha256: str
    max_size: int
    future: Future[bytearray] = field(default_factory=Future)
    busy: bool = False


class PayloadRegistry:
    """Thread-safe table of offered payloads and expected uploads (no I/O).

    ``chunk_size``: bytes per chunk of the offered payloads as they are streamed;
    ``shared_chunks``: how many chunks of each payload concurrent fetches may share
    (:class:`~fedchain.transport.chunks.SharedChunks` ``max_held``; 0 shares none).
    """

    def __init__(
        self, max_payload_bytes: int, chunk_size: int = CHUNK_SIZE, shared_chunks: int = 16
    ) -> None:
        if max_payload_bytes < 0:
            raise PayloadError("max_payload_bytes must be non-negative")
        if chunk_size <= 0 or shared_chunks < 0:
            raise PayloadError(f"bad chunk_size {chunk_size} or shared_chunks {shared_chunks}")
        self.max_payload_bytes = max_payload_bytes
        self.chunk_size = chunk_size
        self.shared_chunks = shared_chunks
        self._lock = threading.RLock()
        self._offers: dict[str, _Offer] = {}
        self._slots: dict[tuple[str, str], _Slot] = {}

    # -- offers (server -> organizations) -------------------------------------------------

    def offer(
        self,
        sha256: str,
        data: bytes | bytearray | memoryview,
        allowed_orgs: Iterable[str],
        *,
        verify: bool = True,
    ) -> None:
        """Serve ``data`` under ``sha256`` to ``allowed_orgs`` (added to earlier grants).

        The bytes are kept by reference (not copied): do not mutate them while offered.
        Offering a digest again only adds organizations; the bytes first offered are kept
        (content-addressed). ``verify=False`` skips re-hashing when the caller has just
        computed the digest; clients check it anyway.
        """
        check_sha256(sha256)
        view = as_byte_view(data)
        if len(view) > self.max_payload_bytes:
            raise PayloadTooLarge(
                f"payload of {len(view)} bytes exceeds the limit of {self.max_payload_bytes}"
            )
        if verify and sha256_hex(view) != sha256:
            raise HashMismatch(f"offered bytes do not hash to {sha256}")
        with self._lock:
            earlier = self._offers.get(sha256)
            payload = earlier.payload if earlier else self._chunks(data)
            orgs = frozenset(allowed_orgs) | (earlier.orgs if earlier else frozenset())
            self._offers[sha256] = _Offer(payload, orgs)

    def _chunks(self, data: bytes | bytearray | memoryview) -> SharedChunks:
        return SharedChunks(data, self.chunk_size, self.shared_chunks)

    def open_offer(self, org: str, sha256: str) -> SharedChunks:
        """The payload ``sha256`` if offered to ``org`` (PayloadError / PeerAuthError)."""
        with self._lock:
            found = self._offers.get(sha256)
        if found is None:
            raise PayloadError(f"no payload {sha256} is offered")
        if org not in found.orgs:
            raise PeerAuthError(f"payload {sha256} is not offered to {org}")
        return found.payload

    def offered(self) -> frozenset[str]:
        """Digests currently offered."""
        with self._lock:
            return frozenset(self._offers)

    # -- expectations (organizations -> server) -------------------------------------------

    def expect(self, org: str, sha256: str, max_size: int | None = None) -> Future[bytearray]:
        """Accept one upload of ``sha256`` from ``org``, at most ``max_size`` bytes.

        Returns the future of the received bytes (the same future if already expected).
        """
        check_sha256(sha256)
        limit = self.max_payload_bytes if max_size is None else max_size
        if limit < 0:
            raise PayloadError(f"max_size must be non-negative, not {max_size}")
        with self._lock:
            slot = self._slots.get((org, sha256))
            if slot is None:
                slot = _Slot(org, sha256, min(limit, self.max_payload_bytes))
                self._slots[(org, sha256)] = slot
                # Keyed, not bound to the slot: slot -> future -> callback -> slot would be a
                # cycle keeping every received payload alive until a cyclic GC pass.
                slot.future.add_done_callback(functools.partial(self._forget_done, (org, sha256)))
            return slot.future

    def expected(self) -> frozenset[tuple[str, str]]:
        """``(org, sha256)`` pairs still awaited."""
        with self._lock:
            return frozenset(self._slots)

    def begin_upload(self, org: str, sha256: str, size: int) -> UploadSink:
        """Reserve the expectation for one transfer, before any body byte is read."""
        with self._lock:
            slot = self._slots.get((org, sha256))
            if slot is None:
                raise PeerAuthError(f"no upload of {sha256} is expected from {org}")
            if slot.busy:
                raise TransportError(f"an upload of {sha256} from {org} is already running")
            oversized = size > slot.max_size
            slot.busy = not oversized
        if oversized:
            error = PayloadTooLarge(
                f"upload of {size} bytes exceeds the limit of {slot.max_size} for {sha256}"
            )
            self._settle(slot, error)
            raise error
        return UploadSink(self, slot, size)

    # -- cleanup ---------------------------------------------------------------------------

    def withdraw(self, sha256: str) -> None:
        """Stop offering ``sha256`` and cancel every expectation of it (idempotent)."""
        with self._lock:
            self._offers.pop(sha256, None)
            slots = [s for key, s in self._slots.items() if key[1] == sha256]
        for slot in slots:
            slot.future.cancel()

    def clear(self) -> None:
        """Withdraw everything (end of a round): the memory is released once transfers end."""
        with self._lock:
            self._offers.clear()
            slots = list(self._slots.values())
        for slot in slots:
            slot.future.cancel()

    # -- internals used by UploadSink ------------------------------------------------------

    def _forget(self, slot: _Slot) -> None:
        with self._lock:
            if self._slots.get((slot.org, slot.sha256)) is slot:
                del self._slots[(slot.org, slot.sha256)]

    def _forget_done(self, key: tuple[str, str], future: Future[bytearray]) -> None:
        with self._lock:
            slot = self._slots.get(key)
            if slot is not None and slot.future is future:
                del self._slots[key]

    def _release(self, slot: _Slot) -> None:
        with self._lock:
            slot.busy = False

    def _settle(self, slot: _Slot, outcome: bytearray | TransportError) -> None:
        """Resolve ``slot`` with data or a final refusal (TransportError if withdrawn)."""
        self._forget(slot)
        try:
            if isinstance(outcome, TransportError):
                slot.future.set_exception(outcome)
            else:
                slot.future.set_result(outcome)
        except InvalidStateError as exc:
            raise TransportError(f"the upload of {slot.sha256} was withdrawn") from exc


class UploadSink:
    """One running upload: fills a preallocated buffer and settles the expectation."""

    def __init__(self, registry: PayloadRegistry, slot: _Slot, size: int) -> None:
        self._registry = registry
        self._slot = slot
        self._buffer = PayloadBuffer(slot.sha256, size)
        self._open = True

    def write(self, chunk: bytes) -> None:
        """Append one chunk; more than announced fails the expectation (PayloadTooLarge)."""
        try:
            self._buffer.write(chunk)
        except PayloadTooLarge as exc:
            self._close(exc)
            raise

    def finish(self) -> None:
        """Check size and digest, then hand the bytes to the waiter."""
        try:
            data = self._buffer.finish()
        except HashMismatch as exc:
            self._close(exc)
            raise
        except Exception:
            self.abort()
            raise
        self._open = False
        self._registry._settle(self._slot, data)

    def abort(self) -> None:
        """The transfer broke off: reopen the expectation for another attempt."""
        if self._open:
            self._open = False
            self._registry._release(self._slot)

    def _close(self, error: TransportError) -> None:
        """Fail the expectation with ``error`` (a no-op if it was withdrawn meanwhile)."""
        if self._open:
            self._open = False
            with contextlib.suppress(TransportError):
                self._registry._settle(self._slot, error)
