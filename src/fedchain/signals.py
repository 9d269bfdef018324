"""SIGTERM and SIGHUP as an exception, with critical sections it waits for.

A command that starts child processes must stop them when it is stopped, whichever way: ``kill``
(SIGTERM), Ctrl-C (SIGINT, Python's ``KeyboardInterrupt``) or a closed terminal or ``kill -HUP``
(SIGHUP). Raising :class:`Terminated` (a ``KeyboardInterrupt``, so code that handles Ctrl-C
handles it too) from the handler makes every ``finally`` run. But an exception raised in the
middle of starting a child (after the fork, before ``Popen`` returns) loses the child: nobody
holds its handle to stop it. Inside :func:`critical` the handler only notes the signal; it is
raised when the section ends. SIGINT gets the same handler (a plain ``KeyboardInterrupt``, as
before, but held in those sections too): Ctrl-C or ``kill -INT`` at the wrong instant orphaned a
child just the same.

None of that helps against SIGKILL (``kill -9``, or a supervisor's hard stop): the process dies at
once and its children live on. A process that starts children names itself in
:data:`PARENT_ENV` for them; each child then asks Linux (``PR_SET_PDEATHSIG``) for a SIGTERM when
that parent ends, however it ends, and stops as if killed (:func:`stop_with_parent`).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = [
    "PARENT_ENV", "STOP_SIGNALS", "Terminated", "critical", "raise_on_termination",
    "stop_with_parent",
]  # fmt: skip

#: The signals turned into :class:`Terminated`.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM or SIGHUP (``signum`` says which)."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


#: Set by a process for the children it starts: its pid (see :func:`stop_with_parent`).
PARENT_ENV = "FEDCHAIN_STOP_WITH_PARENT"
_PR_SET_PDEATHSIG = 1

_state = threading.local()


def _stop(signum: int) -> KeyboardInterrupt:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


def _handler(signum: int, _frame: FrameType | None) -> None:
    if getattr(_state, "depth", 0):
        _state.pending = signum
        return
    raise _stop(signum)


def raise_on_termination() -> None:
    """Turn SIGTERM and SIGHUP into :class:`Terminated` and SIGINT into ``KeyboardInterrupt``
    in the main thread, all held inside :func:`critical`; each unless it is already handled
    otherwise or ignored (``nohup`` ignores SIGHUP: it stays ignored)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, _handler)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _handler)


@contextmanager
def critical() -> Iterator[None]:
    """Hold a stop signal that arrives inside the block until the block has finished."""
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1
        pending = getattr(_state, "pending", None)
        if not _state.depth and pending is not None:
            _state.pending = None
            raise _stop(pending)


def stop_with_parent() -> None:
    """When :data:`PARENT_ENV` holds this process's parent pid, have the kernel send us SIGTERM
    when the parent ends (Linux; elsewhere nothing changes), and raise :class:`Terminated` now if
    it already has. The variable is removed first, so our own children never inherit it (their
    parent is not the pid it names). Call after :func:`raise_on_termination`.

    The kernel ties the request to the parent *thread* that started us: a parent must start its
    children from a thread that outlives them (``fedchain demo`` uses its main thread).
    """
    value = os.environ.pop(PARENT_ENV, None)
    if value is None or not value.isdigit() or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        return
    if os.getppid() != int(value):  # the parent ended before the request was in place
        raise Terminated(signal.SIGTERM)
