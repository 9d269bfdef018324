"""retry_unavailable: retries an outage with backoff, unless the backend already did."""

from __future__ import annotations

import pytest

from fedchain.errors import LedgerUnavailable, RuleViolation
from fedchain.runtime.retry import retry_unavailable


class Flaky:
    """Fails with ``errors`` in turn, then answers ``"ok"``; counts its calls."""

    def __init__(self, *errors: Exception) -> None:
        self.errors, self.calls = list(errors), 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_an_unretried_outage_is_retried_with_backoff() -> None:
    slept: list[float] = []
    flaky = Flaky(LedgerUnavailable("busy"), LedgerUnavailable("busy"))
    assert retry_unavailable(flaky, what="read", sleep=slept.append) == "ok"
    assert (flaky.calls, slept) == (3, [0.1, 0.2])


def test_an_outage_that_outlasts_the_attempts_propagates() -> None:
    slept: list[float] = []
    last = LedgerUnavailable("still down")
    flaky = Flaky(LedgerUnavailable("down"), LedgerUnavailable("down"), last)
    with pytest.raises(LedgerUnavailable) as info:
        retry_unavailable(flaky, what="read", attempts=3, max_delay=0.15, sleep=slept.append)
    assert info.value is last
    assert (flaky.calls, slept) == (3, [0.1, 0.15])


def test_an_outage_the_backend_already_retried_is_raised_at_once() -> None:
    slept: list[float] = []
    retried = LedgerUnavailable("gateway down after 5 attempts", retried=True)
    flaky = Flaky(retried)
    with pytest.raises(LedgerUnavailable) as info:
        retry_unavailable(flaky, what="read", attempts=10, sleep=slept.append)
    assert info.value is retried
    assert (flaky.calls, slept) == (1, [])
    assert LedgerUnavailable("busy").retried is False  # the default: retry


def test_a_refusal_is_an_answer_not_an_outage() -> None:
    slept: list[float] = []
    flaky = Flaky(RuleViolation("update.duplicate", "already there"))
    with pytest.raises(RuleViolation):
        retry_unavailable(flaky, what="write", sleep=slept.append)
    assert (flaky.calls, slept) == (1, [])


def test_the_fabric_backend_alone_rides_out_as_long_an_outage_as_the_runtime() -> None:
    """The runtime does not retry on top of the Fabric backend, so the backend's own default
    backoff must be the whole budget: at least what the runtime waits on other backends."""
    from fedchain.ledger.fabric.retry import Backoff  # the optional Fabric extra

    runtime_waits: list[float] = []
    down = Flaky(*(LedgerUnavailable("down") for _ in range(100)))
    with pytest.raises(LedgerUnavailable):
        retry_unavailable(down, what="read", sleep=runtime_waits.append)
    assert sum(Backoff().delays()) >= sum(runtime_waits) > 10

