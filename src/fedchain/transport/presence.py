"""Which organizations are connected right now: the aggregator's view, fed by ``Attach`` streams.

An organization keeps one long-lived ``Attach`` call open while it runs; the server counts it
present from the call's start until the call ends (client exit, crash, network loss — gRPC
keepalive and the periodic heartbeat notice a dead peer). Flower's ``Grid.get_node_ids`` is
answered from here, so strategies sample only organizations that are actually there.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc

__all__ = ["HEARTBEAT_S", "AttachLoop", "Backoff", "Presence", "Report"]

HEARTBEAT_S = 5.0
_log = logging.getLogger(__name__)


class Presence:
    """A thread-safe multiset of attached organizations, with a condition to wait on."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self._attached: Counter[str] = Counter()

    @contextmanager
    def attached(self, org: str) -> Iterator[None]:
        """Count ``org`` present for the duration of the block."""
        with self.changed:
            self._attached[org] += 1
            self.changed.notify_all()
        try:
            yield
        finally:
            with self.changed:
                self._attached[org] -= 1
                if self._attached[org] <= 0:
                    del self._attached[org]
                self.changed.notify_all()

    def orgs(self) -> frozenset[str]:
        """Organizations with at least one open ``Attach`` call."""
        with self.changed:
            return frozenset(self._attached)


#: ``report(state, details)``: ``"attached"``, or ``"unreachable"`` / ``"lost"`` with
#: ``reason`` and ``retry_in`` (seconds).
Report = Callable[[str, dict[str, Any]], None]


def _log_report(state: str, details: dict[str, Any]) -> None:
    if state == "attached":
        _log.info("attached to the aggregator")
    else:
        _log.warning(
            "cannot attach to the aggregator (%s); retrying in %g s",
            details["reason"],
            details["retry_in"],
        )


@dataclass(frozen=True)
class Backoff:
    """Seconds between attempts: ``first``, doubling up to ``cap``."""

    first: float = 0.5
    cap: float = 30.0

    def delays(self) -> Iterator[float]:
        delay = self.first
        while True:
            yield delay
            delay = min(delay * 2, self.cap)


class AttachLoop:
    """Client side: keep an ``Attach`` call open, reconnecting with capped backoff, until
    stopped; every change (attached, unreachable, lost) goes to ``report``, with the reason
    and the wait before the next attempt. ``wait(seconds)`` returns True to stop waiting early
    (default: this loop's stop event); tests pass their own to run without waiting."""

    def __init__(
        self,
        call: Callable[[], Iterator[bytes]],
        *,
        report: Report = _log_report,
        backoff: Backoff | None = None,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        self._call = call
        self._report = report
        self._backoff = backoff or Backoff()
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self.attached = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fedchain-attach", daemon=True)
        self._stream: Iterator[bytes] | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        stream = self._stream
        if isinstance(stream, grpc.Future):
            stream.cancel()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        delays = self._backoff.delays()
        while not self._stop.is_set():
            reason = self._attach_once()
            if reason is None:
                return
            if self.attached.is_set():
                self.attached.clear()
                delays = self._backoff.delays()  # a fresh outage starts from the first delay
                state = "lost"
            else:
                state = "unreachable"
            delay = next(delays)
            self._report(state, {"reason": reason, "retry_in": delay})
            if self._wait(delay):
                return

    def _attach_once(self) -> str | None:
        """Hold one ``Attach`` call; why it ended (None: stopped)."""
        try:
            self._stream = self._call()
            for _ in self._stream:
                if not self.attached.is_set():
                    self.attached.set()
                    self._report("attached", {})
                if self._stop.is_set():
                    return None
        except grpc.RpcError as exc:
            if self._stop.is_set():
                return None
            details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
            return f"{exc.code().name}: {_first_line(details)}"
        return None if self._stop.is_set() else "the aggregator ended the connection"


def _first_line(text: str | None) -> str:
    """gRPC's details, shortened to one line: "failed to connect to all addresses; last error:
    UNKNOWN: ipv4:127.0.0.1:1: Failed to connect to remote host: Connection refused" says only
    its last part."""
    lines = (text or "no details").strip().splitlines()
    line = lines[0] if lines else "no details"
    cause = re.search(r"last error: \w+: (?:ipv[46]|unix):\S+: (.+)$", line)
    return cause.group(1) if cause else line
