"""SHA-256 content hashes, the one way every layer names bytes.

Ledger records, models and data-plane payloads are all addressed by the lowercase hex SHA-256 of
their bytes. This base-layer module (stdlib only) lets the ledger and the transport share one
implementation. Large buffers are hashed through a flat ``memoryview`` in slices, so a model of
hundreds of megabytes is never copied to be hashed.
"""

from __future__ import annotations

import hashlib

__all__ = ["sha256_hex"]

#: Bytes handed to the hash per update (bounds the slice size, not memory: slices are views).
HASH_STEP = 16 << 20


def sha256_hex(data: bytes | bytearray | memoryview) -> str:
    """Lowercase hex SHA-256 of ``data``, hashed in slices without copying.

    A ``memoryview`` of any format or shape is read as its flat bytes; it must be C-contiguous
    (``TypeError`` otherwise: a caller bug, as for :mod:`hashlib`).
    """
    if isinstance(data, bytes) and len(data) <= HASH_STEP:
        return hashlib.sha256(data).hexdigest()  # the common small case
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    digest = hashlib.sha256()
    for start in range(0, len(view), HASH_STEP):
        digest.update(view[start : start + HASH_STEP])
    return digest.hexdigest()
