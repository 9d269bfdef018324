"""What a long-running organization process says about itself: one event per change of state.

Each is ``("state", {"state": NAME, "message": LINE, ...})``. ``message`` is the line a person
reads (``fedchain-client`` prints it; the demo's organization logs hold it as JSON); ``state``
is for scripts: ``waiting-ledger``, ``waiting-aggregator``, ``attached``, ``lost``,
``training`` (any task of a round), ``idle`` (a run finished, waiting for the next) and
``finished`` (the run is done and the process exits). Without an event sink the line is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fedchain.transport.presence import Report

__all__ = ["Events", "attach_reporter", "doing", "say"]

log = logging.getLogger(__name__)
Events = Callable[[str, dict[str, Any]], None]

#: How a task type reads in "round N: ...".
_DOING = {"train": "training", "evaluate": "evaluating"}


def say(events: Events | None, state: str, message: str, **details: Any) -> None:
    """Report a change of state (``details`` go into the event as they are)."""
    if events is None:
        log.log(logging.WARNING if state in {"lost", "waiting-aggregator"} else logging.INFO,
                "%s", message)  # fmt: skip
        return
    events("state", {"state": state, "message": message, **details})


def doing(task_type: str, rnd: int) -> str:
    """``round 3: training`` (or evaluating, or the task type itself)."""
    return f"round {rnd}: {_DOING.get(task_type, task_type)}"


def attach_reporter(events: Events | None, server: str) -> Report:
    """The data plane's attach loop's changes as state events about ``server``."""

    def report(change: str, details: dict[str, Any]) -> None:
        if change == "attached":
            say(events, "attached", f"attached to the aggregator at {server}")
            return
        retry = f"retrying in {details['retry_in']:g} s"
        if change == "lost":
            message = f"lost the aggregator at {server} ({details['reason']}); {retry}"
            say(events, "lost", message, **details)
        else:
            message = f"cannot reach the aggregator at {server} ({details['reason']}); {retry}"
            say(events, "waiting-aggregator", message, **details)

    return report
