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

__all__ = ["HEARTBEAT_S", "AttachLoop", "Backoff", "Presence", "Report", "log_report"]

HEARTBEAT_S = 5.0
#: Status codes by which the aggregator refuses an organization it has authenticated.
_REFUSALS = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED"})
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


def log_report(state: str, details: dict[str, Any]) -> None:
    """The default report: attach changes as log lines."""
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
    (default: this loop's stop event); tests pass their own to run without waiting.

    A refusal ends the loop instead, since trying again cannot help: the server's
    ``UNAUTHENTICATED`` or ``PERMISSION_DENIED``, or an ``UNAVAILABLE`` that ``diagnose()``
    explains as refused certificates (see :mod:`.handshake`). ``refused`` then holds why and
    ``ended`` is set.
    """

    def __init__(
        self,
        call: Callable[[], Iterator[bytes]],
        *,
        report: Report = log_report,
        backoff: Backoff | None = None,
        wait: Callable[[float], bool] | None = None,
        diagnose: Callable[[], str | None] | None = None,
    ) -> None:
        self._call = call
        self._diagnose = diagnose
        self.refused: str | None = None
        self.ended = threading.Event()
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
        try:
            self._attach_until_stopped()
        finally:
            self.ended.set()

    def _attach_until_stopped(self) -> None:
        delays = self._backoff.delays()
        while not self._stop.is_set():
            failure = self._attach_once()
            if failure is None:
                return
            code, reason = failure
            self.refused = self._refusal(code, reason)
            if self.refused is not None:
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

    def _refusal(self, code: str, reason: str) -> str | None:
        """Why retrying cannot help after a failed call, or None if it may."""
        if code in _REFUSALS:
            return f"the aggregator refused this organization ({reason})"
        if code == "UNAVAILABLE" and self._diagnose is not None and not self._stop.is_set():
            return self._diagnose()
        return None

    def _attach_once(self) -> tuple[str, str] | None:
        """Hold one ``Attach`` call; its status code and why it ended (None: stopped)."""
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
            code = exc.code().name
            return code, f"{code}: {_first_line(details)}"
        return None if self._stop.is_set() else ("OK", "the aggregator ended the connection")


def _first_line(text: str | None) -> str:
    """gRPC's details, shortened to one line: "failed to connect to all addresses; last error:
    UNKNOWN: ipv4:127.0.0.1:1: Failed to connect to remote host: Connection refused" says only
    its last part."""
    lines = (text or "no details").strip().splitlines()
    line = lines[0] if lines else "no details"
    cause = re.search(r"last error: \w+: (?:ipv[46]|unix):\S+: (.+)$", line)
    return cause.group(1) if cause else line
