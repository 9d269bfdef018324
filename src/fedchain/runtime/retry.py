"""Retrying ledger operations that failed because the ledger was briefly unavailable."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from fedchain.errors import LedgerUnavailable, WriteUnconfirmed
from fedchain.ledger.base import Ledger
from fedchain.ledger.records import Record

__all__ = ["publish", "retry_unavailable"]

T = TypeVar("T")
log = logging.getLogger(__name__)


def retry_unavailable(
    operation: Callable[[], T],
    *,
    what: str,
    attempts: int = 10,
    first_delay: float = 0.1,
    max_delay: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``operation``; on ``LedgerUnavailable`` wait (exponential backoff) and try again.

    Only unavailability is retried: a refused write (``RuleViolation``) is an answer, not an
    outage. After ``attempts`` failures the last ``LedgerUnavailable`` propagates, and so does
    one the backend marks ``retried`` at once (it has exhausted its own backoff already).
    """
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return operation()
        except LedgerUnavailable as exc:
            if exc.retried or attempt == attempts:
                raise
            log.warning(
                "ledger unavailable while trying to %s (%s); retry %d/%d in %.1fs",
                what,
                exc,
                attempt,
                attempts - 1,
                delay,
            )
            sleep(delay)
            delay = min(delay * 2, max_delay)
    raise LedgerUnavailable(f"could not {what}")  # unreachable: the loop returns or raises


def publish(ledger: Ledger, batch: Record | list[Record], *, what: str) -> None:
    """Publish ``batch``, retrying while the ledger is unavailable.

    A write the backend reports committed but not yet in ledger order (``WriteUnconfirmed``)
    counts as done: it stands, and publishing it again would be refused as a duplicate.
    """
    try:
        retry_unavailable(lambda: ledger.metadata_publish(batch), what=what)
    except WriteUnconfirmed as exc:
        log.warning("could not yet confirm the write to %s; carrying on: %s", what, exc)
