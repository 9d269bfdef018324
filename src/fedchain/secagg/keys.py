"""Key agreement and key derivation: X25519 + HKDF-SHA256, and the ledger key check.

Each organization has two X25519 key pairs per round (as in SecAgg): ``enc`` agrees on the keys
that encrypt Shamir shares for a neighbour, ``mask`` agrees on the pairwise mask seeds. Every
derivation is salted with the round configuration digest (``context``) and labelled with the
organization ids, so keys never carry over between rounds, configurations or pairs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fedchain.errors import KeyMismatch, ProtocolError
from fedchain.secagg._wire import label, lp, utf8

__all__ = [
    "KEY_BYTES",
    "KeyPairs",
    "PublicKeys",
    "check_public_key",
    "hkdf",
    "pairwise_seed",
    "share_key",
    "verify_keys",
    "x25519_public",
    "x25519_shared",
]

KEY_BYTES = 32


def hkdf(ikm: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 (RFC 5869)."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def x25519_public(private: bytes) -> bytes:
    """The X25519 public key (32 bytes) of a 32-byte private key."""
    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()


def x25519_shared(private: bytes, peer_public: bytes) -> bytes:
    """The X25519 shared secret; a malformed or low-order peer key is the peer's fault."""
    try:
        peer = X25519PublicKey.from_public_bytes(peer_public)
        return X25519PrivateKey.from_private_bytes(private).exchange(peer)
    except ValueError as exc:
        raise ProtocolError(f"unusable X25519 public key: {exc}") from exc


_PROBE = bytes([9]) + bytes(31)  # any scalar: low-order points give an all-zero secret for all


def check_public_key(public: bytes) -> None:
    """Raise :class:`ProtocolError` for a key no one can agree with (wrong size, low order)."""
    x25519_shared(_PROBE, public)


def pairwise_seed(
    private: bytes, peer_public: bytes, context: bytes, org_a: str, org_b: str
) -> bytes:
    """The 32-byte mask seed shared by ``org_a`` and ``org_b`` (symmetric in the two)."""
    low, high = sorted((org_a, org_b))
    secret = x25519_shared(private, peer_public)
    return hkdf(secret, context, lp(label("mask-seed"), utf8(low), utf8(high)))


def share_key(
    private: bytes, peer_public: bytes, context: bytes, sender: str, receiver: str
) -> bytes:
    """The AES-256-GCM key for the one message of shares ``sender`` sends ``receiver``."""
    secret = x25519_shared(private, peer_public)
    return hkdf(secret, context, lp(label("share-key"), utf8(sender), utf8(receiver)))


@dataclass(frozen=True)
class PublicKeys:
    """An organization's two round public keys, as raw 32-byte X25519 encodings."""

    enc: bytes
    mask: bytes

    def __post_init__(self) -> None:
        if len(self.enc) != KEY_BYTES or len(self.mask) != KEY_BYTES:
            raise ProtocolError("public keys must be 32 bytes each")

    def to_bytes(self) -> bytes:
        """``enc || mask``: the 64 bytes the ledger anchors."""
        return self.enc + self.mask

    @classmethod
    def from_bytes(cls, data: bytes) -> PublicKeys:
        """Inverse of :meth:`to_bytes`."""
        if len(data) != 2 * KEY_BYTES:
            raise ProtocolError(f"public keys must be {2 * KEY_BYTES} bytes, got {len(data)}")
        return cls(enc=data[:KEY_BYTES], mask=data[KEY_BYTES:])


@dataclass(frozen=True, repr=False)
class KeyPairs:
    """An organization's two round private keys (raw 32-byte X25519 scalars)."""

    enc: bytes
    mask: bytes

    def public(self) -> PublicKeys:
        """The matching public keys."""
        return PublicKeys(enc=x25519_public(self.enc), mask=x25519_public(self.mask))

    def __repr__(self) -> str:
        return "KeyPairs(<secret>)"


def verify_keys(relayed: Mapping[str, PublicKeys], trusted: Mapping[str, PublicKeys]) -> None:
    """Raise :class:`KeyMismatch` unless every relayed key set equals the trusted one.

    ``trusted`` is what the owners published (e.g. on the ledger); organizations missing from it
    count as a mismatch. Organizations absent from ``relayed`` are not checked (they dropped).
    """
    bad = sorted(org for org, keys in relayed.items() if trusted.get(org) != keys)
    if bad:
        raise KeyMismatch(f"relayed public keys differ from the trusted ones for: {bad}")
