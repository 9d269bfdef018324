"""Byte-level helpers shared by the secure-aggregation modules.

Every label that enters a hash, a KDF or an AEAD goes through :func:`lp` (length-prefixed
concatenation), so two different tuples of fields can never encode to the same bytes.
"""

from __future__ import annotations

PROTOCOL = b"fedchain/secagg/v1"


def lp(*parts: bytes) -> bytes:
    """Concatenate ``parts``, each preceded by its length as 4 big-endian bytes."""
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def label(name: str) -> bytes:
    """A domain-separation label: ``fedchain/secagg/v1/<name>``."""
    return PROTOCOL + b"/" + name.encode("ascii")


def utf8(text: str) -> bytes:
    """UTF-8 bytes of an organization id or round id."""
    return text.encode("utf-8")
