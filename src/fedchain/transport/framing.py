"""Sans-IO framing of the data plane: JSON headers, chunking, in-place hashed reassembly.

Every stream of the ``fedchain.DataPlane`` service starts with one small JSON header (a dict
with ``"v"``, the protocol version, and ``"kind"``) followed by raw byte chunks. Nothing here
touches gRPC or sockets, so the rules (what a valid header is, when a payload is complete,
whether it hashes right) are tested without a network.

Payloads are content-addressed by the lowercase hex SHA-256 of their bytes. A receiver
preallocates one ``bytearray`` of the announced size and fills it in place while hashing
incrementally (:class:`PayloadBuffer`). An uploader slices one read-only ``memoryview``
(:func:`iter_chunks`). The aggregator, which sends one payload to many organizations at once,
shares each chunk's ``bytes`` between their streams (:mod:`fedchain.transport.chunks`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fedchain.errors import HashMismatch, PayloadError, PayloadTooLarge, ProtocolError

__all__ = [
    "CHUNK_SIZE",
    "HEADER_LIMIT",
    "PROTOCOL_VERSION",
    "SERVICE",
    "FetchRequest",
    "PayloadBuffer",
    "PayloadHeader",
    "PingRequest",
    "UploadHeader",
    "as_byte_view",
    "check_sha256",
    "chunk_bytes",
    "decode_header",
    "encode_header",
    "iter_chunks",
]

#: Bytes per streamed chunk. gRPC's per-message limits are derived from it.
CHUNK_SIZE = 1 << 20
#: Largest JSON header accepted (headers are a few hundred bytes).
HEADER_LIMIT = 16 * 1024
PROTOCOL_VERSION = 1
#: Full gRPC service name; methods Ping, Fetch, Upload.
SERVICE = "fedchain.DataPlane"

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_MAX_TEXT = 1024


def check_sha256(value: str) -> str:
    """Return ``value`` if it is a lowercase hex SHA-256 digest; PayloadError otherwise."""
    if not isinstance(value, str) or not _SHA256_RE.fullmatch(value):
        raise PayloadError(f"not a lowercase hex SHA-256 digest: {value!r:.80}")
    return value


def as_byte_view(data: bytes | bytearray | memoryview) -> memoryview:
    """A read-only, flat byte view of ``data`` without copying (PayloadError if impossible)."""
    try:
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
    except TypeError as exc:
        raise PayloadError(f"payload must be a contiguous buffer: {exc}") from exc
    return view.toreadonly()


def chunk_bytes(chunk: bytes | memoryview) -> bytes:
    """gRPC sends ``bytes``: materialize one chunk (never a whole payload)."""
    return chunk if isinstance(chunk, bytes) else chunk.tobytes()


def iter_chunks(view: memoryview, chunk_size: int = CHUNK_SIZE) -> Iterator[memoryview]:
    """Zero-copy slices of ``view`` of at most ``chunk_size`` bytes (none for empty data)."""
    for start in range(0, len(view), chunk_size):
        yield view[start : start + chunk_size]


class PayloadBuffer:
    """Reassembles one announced payload in a preallocated buffer, hashing as it goes.

    ``write`` refuses bytes past the announced size (PayloadTooLarge); ``finish`` refuses a
    short payload (ProtocolError) or one whose digest differs (HashMismatch).
    """

    def __init__(self, sha256: str, size: int) -> None:
        self.sha256 = check_sha256(sha256)
        self.size = size
        self._buffer = bytearray(size)
        self._view = memoryview(self._buffer)
        self._hash = hashlib.sha256()
        self._filled = 0

    @property
    def received(self) -> int:
        """Bytes written so far."""
        return self._filled

    def write(self, chunk: bytes | memoryview) -> None:
        """Append ``chunk`` in place."""
        end = self._filled + len(chunk)
        if end > self.size:
            raise PayloadTooLarge(
                f"payload {self.sha256[:12]} sent more than its announced {self.size} bytes"
            )
        self._view[self._filled : end] = chunk
        self._hash.update(chunk)
        self._filled = end

    def finish(self) -> bytearray:
        """The complete payload, once its size and digest check out."""
        if self._filled != self.size:
            raise ProtocolError(
                f"payload {self.sha256[:12]} ended after {self._filled} of {self.size} bytes"
            )
        actual = self._hash.hexdigest()
        if actual != self.sha256:
            raise HashMismatch(f"payload announced as {self.sha256} hashes to {actual}")
        self._view.release()
        return self._buffer


def encode_header(kind: str, **fields: str | int) -> bytes:
    """The JSON header of a stream: ``{"v": 1, "kind": kind, **fields}``, compact."""
    doc: dict[str, str | int] = {"v": PROTOCOL_VERSION, "kind": kind, **fields}
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def decode_header(raw: bytes, kind: str) -> dict[str, Any]:
    """Parse a header of ``kind`` (ProtocolError if it is not one)."""
    if len(raw) > HEADER_LIMIT:
        raise ProtocolError(f"{kind} header of {len(raw)} bytes exceeds {HEADER_LIMIT}")
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"{kind} header is not JSON: {exc}") from exc
    except RecursionError as exc:  # nesting deep enough to exhaust the parser's stack
        raise ProtocolError(f"{kind} header nests too deeply") from exc
    if not isinstance(doc, dict) or doc.get("kind") != kind:
        raise ProtocolError(f"expected a {kind!r} header")
    if doc.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"unsupported data-plane protocol version {doc.get('v')!r}")
    return doc


def _text(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value or len(value) > _MAX_TEXT:
        raise ProtocolError(f"header field {key!r} must be a non-empty string")
    return value


def _count(doc: dict[str, Any], key: str) -> int:
    value = doc.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProtocolError(f"header field {key!r} must be a non-negative integer")
    return value


def _digest(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not _SHA256_RE.fullmatch(value):
        raise ProtocolError(f"header field {key!r} must be a lowercase hex SHA-256")
    return value


@dataclass(frozen=True)
class PingRequest:
    """Client -> server: who the caller claims to be."""

    org: str

    def encode(self) -> bytes:
        """Wire form."""
        return encode_header("ping", org=self.org)

    @classmethod
    def decode(cls, raw: bytes) -> PingRequest:
        """Parse and validate (ProtocolError)."""
        return cls(org=_text(decode_header(raw, "ping"), "org"))


@dataclass(frozen=True)
class FetchRequest:
    """Client -> server: send me payload ``sha256`` if it is at most ``max_size`` bytes."""

    org: str
    sha256: str
    max_size: int

    def encode(self) -> bytes:
        """Wire form."""
        return encode_header("fetch", org=self.org, sha256=self.sha256, max_size=self.max_size)

    @classmethod
    def decode(cls, raw: bytes) -> FetchRequest:
        """Parse and validate (ProtocolError)."""
        doc = decode_header(raw, "fetch")
        return cls(_text(doc, "org"), _digest(doc, "sha256"), _count(doc, "max_size"))


@dataclass(frozen=True)
class PayloadHeader:
    """First message of a fetch response: what follows and how long it is."""

    sha256: str
    size: int

    def encode(self) -> bytes:
        """Wire form."""
        return encode_header("payload", sha256=self.sha256, size=self.size)

    @classmethod
    def decode(cls, raw: bytes) -> PayloadHeader:
        """Parse and validate (ProtocolError)."""
        doc = decode_header(raw, "payload")
        return cls(_digest(doc, "sha256"), _count(doc, "size"))


@dataclass(frozen=True)
class UploadHeader:
    """First message of an upload: the sender's claim, the payload's digest and size."""

    org: str
    sha256: str
    size: int
    task: str

    def encode(self) -> bytes:
        """Wire form."""
        return encode_header(
            "upload", org=self.org, sha256=self.sha256, size=self.size, task=self.task
        )

    @classmethod
    def decode(cls, raw: bytes) -> UploadHeader:
        """Parse and validate (ProtocolError)."""
        doc = decode_header(raw, "upload")
        return cls(
            _text(doc, "org"), _digest(doc, "sha256"), _count(doc, "size"), _text(doc, "task")
        )
