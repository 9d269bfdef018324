"""The messages of a round: plain dataclasses of strings, bytes and numpy arrays.

Server-to-client messages are addressed by the driver; client-to-server messages carry no sender
field: the driver passes the *authenticated* organization id (from mTLS / the ledger) to
:meth:`ServerSession.receive`, so a client cannot speak for another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from fedchain.errors import ProtocolError
from fedchain.secagg.config import RoundConfig
from fedchain.secagg.keys import PublicKeys
from fedchain.secagg.stages import Kind

__all__ = [
    "Abort",
    "ClientMessage",
    "KeyAdvert",
    "KeysBroadcast",
    "LocalUpdate",
    "MaskedInput",
    "ServerMessage",
    "SetupRequest",
    "ShareBundle",
    "SharesDelivery",
    "UnmaskReply",
    "UnmaskRequest",
]

_WORD = np.dtype("<u4")


@dataclass(frozen=True)
class SetupRequest:
    """Server -> client: the round configuration."""

    kind: ClassVar[Kind] = Kind.SETUP_REQUEST
    config: RoundConfig


@dataclass(frozen=True)
class KeysBroadcast:
    """Server -> client: the public keys of the neighbours that advertised theirs."""

    kind: ClassVar[Kind] = Kind.KEYS_BROADCAST
    keys: Mapping[str, PublicKeys]


@dataclass(frozen=True)
class SharesDelivery:
    """Server -> client: encrypted shares addressed to it, by sender."""

    kind: ClassVar[Kind] = Kind.SHARES_DELIVERY
    ciphertexts: Mapping[str, bytes]


@dataclass(frozen=True)
class UnmaskRequest:
    """Server -> client: whose self-mask seed (survivors) and mask key (dropped) to reveal."""

    kind: ClassVar[Kind] = Kind.UNMASK_REQUEST
    survivors: tuple[str, ...]
    dropped: tuple[str, ...]


@dataclass(frozen=True)
class Abort:
    """Server -> client: the round is abandoned; the client reveals nothing more."""

    kind: ClassVar[Kind] = Kind.ABORT
    reason: str


@dataclass(frozen=True)
class KeyAdvert:
    """Client -> server: its two round public keys."""

    kind: ClassVar[Kind] = Kind.KEY_ADVERT
    keys: PublicKeys


@dataclass(frozen=True)
class ShareBundle:
    """Client -> server: one AEAD ciphertext of shares per neighbour, by receiver."""

    kind: ClassVar[Kind] = Kind.SHARE_BUNDLE
    ciphertexts: Mapping[str, bytes]


@dataclass(frozen=True, eq=False)
class MaskedInput:
    """Client -> server: the masked ring vector (``dim + 1`` uint32 words, the last is weight).

    ``accused``: neighbours whose share box did not open; the vector carries no pairwise mask
    with them (see "Misbehaving neighbours" in docs/secagg.md). :meth:`to_bytes` is exactly the
    vector that travels, so the integration can hash it for the ledger.
    """

    kind: ClassVar[Kind] = Kind.MASKED_INPUT
    masked: npt.NDArray[np.uint32]
    accused: tuple[str, ...] = field(default=())

    def to_bytes(self) -> bytes:
        """Little-endian uint32 words."""
        return self.masked.astype(_WORD, copy=False).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, accused: tuple[str, ...] = ()) -> MaskedInput:
        """Inverse of :meth:`to_bytes`; the array is read-only over ``data``."""
        if len(data) % 4:
            raise ProtocolError("masked input length is not a multiple of 4 bytes")
        return cls(np.frombuffer(data, dtype=_WORD).astype(np.uint32, copy=False), accused)


@dataclass(frozen=True)
class UnmaskReply:
    """Client -> server: self-mask-seed shares of survivors, mask-key shares of the dropped."""

    kind: ClassVar[Kind] = Kind.UNMASK_REPLY
    self_shares: Mapping[str, bytes]
    key_shares: Mapping[str, bytes]


@dataclass(frozen=True, eq=False)
class LocalUpdate:
    """The local training result a client masks: a float vector and its integer weight."""

    vector: npt.ArrayLike
    weight: int


ServerMessage = SetupRequest | KeysBroadcast | SharesDelivery | UnmaskRequest | Abort
ClientMessage = KeyAdvert | ShareBundle | MaskedInput | UnmaskReply
