"""Encryption of Shamir shares from one organization to a neighbour (AES-256-GCM).

The key comes from the two organizations' ``enc`` X25519 keys and is specific to the direction
(sender -> receiver), so each key seals exactly one message and a fixed nonce is safe. The
associated data binds the round configuration digest, the sender and the receiver: the
aggregator relaying a ciphertext cannot swap it between pairs or rounds undetected.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fedchain.errors import ProtocolError
from fedchain.secagg._wire import label, lp, utf8
from fedchain.secagg.keys import share_key
from fedchain.secagg.shamir import SHARE_BYTES

__all__ = ["CIPHERTEXT_BYTES", "PLAINTEXT_BYTES", "open_shares", "seal_shares"]

PLAINTEXT_BYTES = 2 * SHARE_BYTES  # self-mask-seed share || mask-key share
CIPHERTEXT_BYTES = PLAINTEXT_BYTES + 16
_NONCE = bytes(12)


def _associated_data(context: bytes, sender: str, receiver: str) -> bytes:
    return lp(label("shares"), context, utf8(sender), utf8(receiver))


def seal_shares(
    private: bytes,
    peer_public: bytes,
    context: bytes,
    sender: str,
    receiver: str,
    shares: tuple[bytes, bytes],
) -> bytes:
    """Encrypt ``(seed_share, key_share)`` from ``sender`` (holding ``private``) to ``receiver``."""
    plaintext = shares[0] + shares[1]
    if len(plaintext) != PLAINTEXT_BYTES:
        raise ProtocolError("shares have the wrong size")
    key = share_key(private, peer_public, context, sender, receiver)
    return AESGCM(key).encrypt(_NONCE, plaintext, _associated_data(context, sender, receiver))


def open_shares(
    private: bytes, peer_public: bytes, context: bytes, sender: str, receiver: str, box: bytes
) -> tuple[bytes, bytes]:
    """Decrypt what ``sender`` sealed for ``receiver`` (holding ``private``)."""
    if len(box) != CIPHERTEXT_BYTES:
        raise ProtocolError(f"shares from {sender} have the wrong size")
    key = share_key(private, peer_public, context, sender, receiver)
    try:
        plain = AESGCM(key).decrypt(_NONCE, box, _associated_data(context, sender, receiver))
    except InvalidTag as exc:
        raise ProtocolError(f"shares from {sender} to {receiver} do not authenticate") from exc
    return plain[:SHARE_BYTES], plain[SHARE_BYTES:]
