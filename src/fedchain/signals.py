"""SIGTERM as an exception, with critical sections it waits for.

A command that starts child processes must stop them when it is stopped. Raising
:class:`Terminated` (a ``KeyboardInterrupt``, so code that handles Ctrl-C handles it too) from the
SIGTERM handler makes every ``finally`` run. But an exception raised in the middle of starting a
child (after the fork, before ``Popen`` returns) loses the child: nobody holds its handle to stop
it. Inside :func:`critical` the handler only notes the signal; it is raised when the section ends.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["Terminated", "critical", "raise_on_sigterm"]


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM."""


_state = threading.local()


def _handler(_signum: int, _frame: FrameType | None) -> None:
    if getattr(_state, "depth", 0):
        _state.pending = True
        return
    raise Terminated


def raise_on_sigterm() -> None:
    """Turn SIGTERM into :class:`Terminated` in the main thread, unless it is already handled."""
    main = threading.current_thread() is threading.main_thread()
    if main and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _handler)


@contextmanager
def critical() -> Iterator[None]:
    """Hold a SIGTERM that arrives inside the block until the block has finished."""
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1
        if not _state.depth and getattr(_state, "pending", False):
            _state.pending = False
            raise Terminated
