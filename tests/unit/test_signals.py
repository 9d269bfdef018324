"""fedchain.signals: SIGTERM and SIGHUP as an exception, held back inside critical sections."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from fedchain.signals import STOP_SIGNALS, Terminated, critical, raise_on_termination


@pytest.fixture
def handled() -> Iterator[None]:
    previous = {signum: signal.getsignal(signum) for signum in (*STOP_SIGNALS, signal.SIGINT)}
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    raise_on_termination()
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _deliver(signum: int = signal.SIGTERM) -> None:
    os.kill(os.getpid(), signum)
    for _ in range(10_000):  # bytecode boundaries, where Python runs signal handlers
        pass


@pytest.mark.usefixtures("handled")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["TERM", "HUP"])
def test_a_stop_signal_is_raised_as_terminated_a_kind_of_keyboard_interrupt(signum: int) -> None:
    with pytest.raises(Terminated) as info:
        _deliver(signum)
    assert isinstance(info.value, KeyboardInterrupt)
    assert info.value.signum == signum


@pytest.mark.usefixtures("handled")
def test_a_stop_signal_inside_a_critical_section_waits_for_its_end() -> None:
    """What the demo relies on: a child started and recorded in one step is never orphaned."""
    done: list[str] = []

    def section() -> None:
        with critical():
            _deliver(signal.SIGHUP)
            done.append("after the signal")
            with critical():  # nested: held until the outermost section ends
                _deliver(signal.SIGHUP)
            done.append("after the inner section")

    with pytest.raises(Terminated) as info:
        section()
    assert info.value.signum == signal.SIGHUP
    assert done == ["after the signal", "after the inner section"]
    with critical():
        pass  # nothing is pending any more: the section ends quietly


@pytest.mark.parametrize("signum", STOP_SIGNALS, ids=["TERM", "HUP"])
def test_an_existing_or_ignoring_handler_is_kept(signum: int) -> None:
    """``nohup`` starts a command with SIGHUP ignored: it must stay ignored."""
    previous = signal.getsignal(signum)
    signal.signal(signum, signal.SIG_IGN)
    try:
        raise_on_termination()
        assert signal.getsignal(signum) is signal.SIG_IGN
    finally:
        signal.signal(signum, previous)


@pytest.mark.usefixtures("handled")
def test_sigint_is_a_plain_keyboard_interrupt_held_like_the_others() -> None:
    """A Ctrl-C (or ``kill -INT``) between a child's fork and its being recorded orphaned it:
    the demo's SIGINT test lost a client about one run in eight."""
    done: list[str] = []

    def section() -> None:
        with critical():
            _deliver(signal.SIGINT)
            done.append("after the signal")

    with pytest.raises(KeyboardInterrupt) as info:
        section()
    assert type(info.value) is KeyboardInterrupt
    assert done == ["after the signal"]
