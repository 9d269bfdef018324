"""Stages, message kinds and the explicit transition tables of both sides.

A session's stage names the step of the round it is in. The server *collects* one kind of
reply per stage; a client is in the stage whose reply it has sent last::

    SETUP --start--> ADVERTISE_KEYS --advance--> SHARE_KEYS --advance--> COLLECT_MASKED
          --advance--> UNMASK --finish--> DONE            (any non-terminal --abort--> FAILED)

    client: SETUP --SetupRequest--> ADVERTISE_KEYS --KeysBroadcast--> SHARE_KEYS
          --SharesDelivery--> COLLECT_MASKED --UnmaskRequest--> DONE   (--Abort--> FAILED)

A (stage, kind) pair absent from a table raises :class:`StageError` before the message is even
looked at. Because a client leaves COLLECT_MASKED on its first UnmaskRequest, it answers at most
one: an aggregator cannot ask it twice with different dropout lists.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from fedchain.errors import StageError

__all__ = [
    "CLIENT_INPUTS",
    "CLIENT_TRANSITIONS",
    "SERVER_INPUTS",
    "SERVER_TRANSITIONS",
    "TERMINAL",
    "Kind",
    "Stage",
    "transition",
]


class Stage(enum.Enum):
    """Steps of one secure-aggregation round."""

    SETUP = "setup"
    ADVERTISE_KEYS = "advertise_keys"
    SHARE_KEYS = "share_keys"
    COLLECT_MASKED = "collect_masked"
    UNMASK = "unmask"
    DONE = "done"
    FAILED = "failed"


class Kind(enum.Enum):
    """Inputs to a session: messages from the other side, or a server driver's actions."""

    # server -> client messages
    SETUP_REQUEST = "setup_request"
    KEYS_BROADCAST = "keys_broadcast"
    SHARES_DELIVERY = "shares_delivery"
    UNMASK_REQUEST = "unmask_request"
    ABORT = "abort"
    # client -> server messages
    KEY_ADVERT = "key_advert"
    SHARE_BUNDLE = "share_bundle"
    MASKED_INPUT = "masked_input"
    UNMASK_REPLY = "unmask_reply"
    # server driver actions (ABORT doubles as the server's abort action)
    START = "start"
    ADVANCE = "advance"
    FINISH = "finish"


S, K = Stage, Kind
TERMINAL = frozenset({S.DONE, S.FAILED})
_LIVE = [s for s in Stage if s not in TERMINAL]

CLIENT_INPUTS = frozenset(
    {K.SETUP_REQUEST, K.KEYS_BROADCAST, K.SHARES_DELIVERY, K.UNMASK_REQUEST, K.ABORT}
)
SERVER_INPUTS = frozenset(
    {K.KEY_ADVERT, K.SHARE_BUNDLE, K.MASKED_INPUT, K.UNMASK_REPLY}
    | {K.START, K.ADVANCE, K.FINISH, K.ABORT}
)

CLIENT_TRANSITIONS: Mapping[tuple[Stage, Kind], Stage] = {
    (S.SETUP, K.SETUP_REQUEST): S.ADVERTISE_KEYS,
    (S.ADVERTISE_KEYS, K.KEYS_BROADCAST): S.SHARE_KEYS,
    (S.SHARE_KEYS, K.SHARES_DELIVERY): S.COLLECT_MASKED,
    (S.COLLECT_MASKED, K.UNMASK_REQUEST): S.DONE,
    **{(s, K.ABORT): S.FAILED for s in _LIVE if s is not S.UNMASK},
}

SERVER_TRANSITIONS: Mapping[tuple[Stage, Kind], Stage] = {
    (S.SETUP, K.START): S.ADVERTISE_KEYS,
    (S.ADVERTISE_KEYS, K.KEY_ADVERT): S.ADVERTISE_KEYS,
    (S.ADVERTISE_KEYS, K.ADVANCE): S.SHARE_KEYS,
    (S.SHARE_KEYS, K.SHARE_BUNDLE): S.SHARE_KEYS,
    (S.SHARE_KEYS, K.ADVANCE): S.COLLECT_MASKED,
    (S.COLLECT_MASKED, K.MASKED_INPUT): S.COLLECT_MASKED,
    (S.COLLECT_MASKED, K.ADVANCE): S.UNMASK,
    (S.UNMASK, K.UNMASK_REPLY): S.UNMASK,
    (S.UNMASK, K.FINISH): S.DONE,
    **{(s, K.ABORT): S.FAILED for s in _LIVE},
}


def transition(table: Mapping[tuple[Stage, Kind], Stage], stage: Stage, kind: Kind) -> Stage:
    """The stage after ``kind`` in ``stage``, or :class:`StageError` if not allowed."""
    try:
        return table[(stage, kind)]
    except KeyError:
        raise StageError(f"{kind.value} is not allowed in stage {stage.value}") from None
