"""fedchain.signals: SIGTERM as an exception, held back inside critical sections."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from fedchain.signals import Terminated, critical, raise_on_sigterm


@pytest.fixture
def handled() -> Iterator[None]:
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise_on_sigterm()
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _deliver() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(10_000):  # bytecode boundaries, where Python runs signal handlers
        pass


@pytest.mark.usefixtures("handled")
def test_sigterm_is_raised_as_terminated_a_kind_of_keyboard_interrupt() -> None:
    with pytest.raises(Terminated) as info:
        _deliver()
    assert isinstance(info.value, KeyboardInterrupt)


@pytest.mark.usefixtures("handled")
def test_sigterm_inside_a_critical_section_waits_for_its_end() -> None:
    """What the demo relies on: a child started and recorded in one step is never orphaned."""
    done: list[str] = []

    def section() -> None:
        with critical():
            _deliver()
            done.append("after the signal")
            with critical():  # nested: held until the outermost section ends
                _deliver()
            done.append("after the inner section")

    with pytest.raises(Terminated):
        section()
    assert done == ["after the signal", "after the inner section"]
    with critical():
        pass  # nothing is pending any more: the section ends quietly


def test_an_existing_handler_is_kept() -> None:
    previous = signal.getsignal(signal.SIGTERM)
    mine = signal.SIG_IGN
    signal.signal(signal.SIGTERM, mine)
    try:
        raise_on_sigterm()
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)
