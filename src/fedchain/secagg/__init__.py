"""Sans-IO secure aggregation (SecAgg+ style) over numpy arrays and ``cryptography``.

No gRPC, no Flower, no files, no global random state: a driver moves the messages of
:mod:`fedchain.secagg.messages` between a :class:`ServerSession` and one
:class:`ClientSession` per organization. See ``docs/secagg.md`` for the protocol.
"""

from fedchain.secagg.client import ClientSession
from fedchain.secagg.config import RoundConfig
from fedchain.secagg.keys import PublicKeys, verify_keys
from fedchain.secagg.messages import (
    Abort,
    ClientMessage,
    KeyAdvert,
    KeysBroadcast,
    LocalUpdate,
    MaskedInput,
    ServerMessage,
    SetupRequest,
    ShareBundle,
    SharesDelivery,
    UnmaskReply,
    UnmaskRequest,
)
from fedchain.secagg.quantize import Quantizer, error_bound
from fedchain.secagg.server import AggregateResult, ServerSession, ShareKind
from fedchain.secagg.stages import CLIENT_TRANSITIONS, SERVER_TRANSITIONS, Kind, Stage

__all__ = [
    "CLIENT_TRANSITIONS",
    "SERVER_TRANSITIONS",
    "Abort",
    "AggregateResult",
    "ClientMessage",
    "ClientSession",
    "KeyAdvert",
    "KeysBroadcast",
    "Kind",
    "LocalUpdate",
    "MaskedInput",
    "PublicKeys",
    "Quantizer",
    "RoundConfig",
    "ServerMessage",
    "ServerSession",
    "SetupRequest",
    "ShareBundle",
    "ShareKind",
    "SharesDelivery",
    "Stage",
    "UnmaskReply",
    "UnmaskRequest",
    "error_bound",
    "verify_keys",
]
