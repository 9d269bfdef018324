"""What a failed Gateway call means for the ledger: retry, refusal, or unavailability.

- ``UNAVAILABLE`` and ``DEADLINE_EXCEEDED`` are transient (except a peer's ``UNAVAILABLE``
  for a channel it does not have, a misspelt name that no wait will cure), and so is a
  gateway that cannot
  yet find enough peers to endorse (``FAILED_PRECONDITION``, "no peer combination can satisfy
  the endorsement policy": a peer just restarted, before gossip has found the others, or a
  majority of peers down): the same step is retried with
  exponential backoff (same transaction id, so a retried submit cannot commit twice), and
  when the attempts run out the caller gets :class:`~fedchain.errors.LedgerUnavailable` with
  ``retried=True``, so the runtime does not retry the whole operation once more on top.
- A chaincode refusal arrives as ``"<rule id>: <message>"`` inside the peers' error details
  (``chaincode response 500, update.duplicate: ...``); it becomes a
  :class:`~fedchain.errors.RuleViolation` (or a ``RecordError`` for ``record.invalid``).
- Anything else stays the :class:`~fedchain.errors.GatewayError` subclass it is.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, TypeVar

from fedchain.errors import GatewayError, LedgerError, LedgerUnavailable, RecordError, RuleViolation

__all__ = [
    "LAG_DELAYS",
    "TRANSIENT",
    "Backoff",
    "is_transient",
    "refusal",
    "refused_by_others_only",
    "retrying",
    "while_others_lag",
]

T = TypeVar("T")
TRANSIENT: Final = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})
#: What a Fabric 2.5 gateway says when discovery knows too few live peers for the policy (not
#: when the chaincode is unknown: that message names the missing metadata instead).
_NO_ENDORSERS: Final = "no peer combination can satisfy the endorsement policy"
#: A Fabric 2.5 peer's UNAVAILABLE for a channel it has not joined (or that does not exist).
_NO_CHANNEL: Final = "failed to get config for channel"
_RULE = re.compile(r"(?:^|chaincode response \d+, )([a-z]+\.[a-z_]+): (.*)", re.DOTALL)


@dataclass(frozen=True)
class Backoff:
    """``attempts`` tries in all, waiting ``initial * factor**k`` (at most ``maximum``) between.

    The default rides out about 26 s of unavailability (a peer restarting): the runtime does not
    retry on top of it (``LedgerUnavailable.retried``), so this is the whole budget, as long as
    the runtime's own on the other backends. It is for a gateway a handle has reached: one that
    cannot be reached when the handle opens fails at once (:mod:`.reach`).
    """

    attempts: int = 10
    initial: float = 0.2
    factor: float = 2.0
    maximum: float = 5.0

    def delays(self) -> Iterator[float]:
        delay = self.initial
        for _ in range(max(self.attempts - 1, 0)):
            yield min(delay, self.maximum)
            delay *= self.factor


def retrying(
    step: Callable[[], T],
    what: str,
    backoff: Backoff,
    sleep: Callable[[float], None] = time.sleep,
    *,
    gateway: str = "",
) -> T:
    """Run ``step``; retry it on transient gateway errors; LedgerUnavailable when exhausted
    (``gateway``, the endpoint, only names the gateway in that message)."""
    delays = backoff.delays()
    while True:
        try:
            return step()
        except GatewayError as exc:
            if not is_transient(exc):
                raise
            delay = next(delays, None)
            if delay is None:
                message = _exhausted(exc, what, backoff, gateway)
                raise LedgerUnavailable(message, retried=True) from exc
            sleep(delay)


def _exhausted(exc: GatewayError, what: str, backoff: Backoff, gateway: str) -> str:
    """The message once the backoff is spent: for an endorsement policy that the peers still
    cannot satisfy, say so in the user's terms and what to check (not the gateway's words)."""
    at = f" at {gateway}" if gateway else ""
    spent = f"{backoff.attempts} attempts over {sum(backoff.delays()):.0f} s"
    if not _no_endorsers(exc):
        return f"{what}: Fabric gateway{at} unavailable after {spent}: {exc}"
    return (
        f"{what}: the peers cannot yet satisfy the endorsement policy: the gateway{at} still "
        f"knows too few peers with the chaincode (through discovery) to collect the "
        f"endorsements the policy needs, after {spent}. Check that a majority of the "
        f"organizations' peers are running, have joined the channel and have the chaincode "
        f"installed, and that this peer reaches the others' gossip endpoints (anchor peers); "
        f"the peer's log names the peers it knows. (gateway: {exc.detail})"
    )


def _no_endorsers(exc: GatewayError) -> bool:
    return exc.code == "FAILED_PRECONDITION" and _NO_ENDORSERS in str(exc)


def is_transient(exc: GatewayError) -> bool:
    """Whether retrying the same step later may succeed (see the module docstring)."""
    if exc.code in TRANSIENT:
        return _NO_CHANNEL not in str(exc)
    return _no_endorsers(exc)


#: Waits before endorsing again a proposal that only other organizations' peers refused.
LAG_DELAYS: Final = (0.05, 0.1, 0.2, 0.4, 0.8)


def refused_by_others_only(error: GatewayError, own_msp: str) -> bool:
    """A rule refusal that only peers of other organizations gave.

    The writer acts on what its own organization's peer delivered, so that peer has every
    block the write depends on; another endorser may not have committed the newest block yet
    (peers commit a block some milliseconds apart) and refuse, e.g., a selection of an update
    it has not seen (``selection.not_announced``). Such a refusal is worth another try; one
    the writer's own peer gave is final.
    """
    if refusal(error) is None:
        return False
    refusers = [msp for _, msp, message in error.details if _RULE.search(message)]
    return bool(refusers) and own_msp not in refusers


def while_others_lag(
    endorse: Callable[[], T],
    own_msp: str,
    sleep: Callable[[float], None] = time.sleep,
    delays: tuple[float, ...] = LAG_DELAYS,
) -> T:
    """``endorse()``, again after a short wait while only lagging peers refuse it."""
    waits = iter(delays)
    while True:
        try:
            return endorse()
        except GatewayError as exc:
            delay = next(waits, None)
            if delay is None or not refused_by_others_only(exc, own_msp):
                raise
            sleep(delay)


def refusal(error: GatewayError) -> LedgerError | None:
    """The chaincode's rule refusal carried by ``error``, if it carries one."""
    for text in [*(message for _, _, message in error.details), error.detail]:
        found = _RULE.search(text)
        if found is not None:
            rule, message = found.group(1), found.group(2)
            if rule == "record.invalid":
                return RecordError(message)
            return RuleViolation(rule, message)
    return None


def unknown_function(exc: GatewayError, function: str) -> bool:
    """Whether the chaincode answered that it has no ``function`` (fabric-contract-api's words)."""
    texts = [str(exc), *(message for _, _, message in exc.details)]
    needle = f"function that does not exist: {function}"
    return any(needle in text for text in texts)
