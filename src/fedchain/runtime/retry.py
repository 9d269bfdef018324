"""Retrying ledger operations that failed because the ledger was briefly unavailable."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from fedchain.errors import LedgerUnavailable

__all__ = ["retry_unavailable"]

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
