"""Fair use of the data plane: per-organization call limits and an idle deadline on streams.

A member organization runs code the others do not control, so the server bounds what one
caller can hold (issue #12, point 3):

* at most ``per_org`` calls of one organization run at once; another is refused at once with
  RESOURCE_EXHAUSTED (``busy: ...``), before its request is read;
* at most ``total`` calls run at all (gRPC's ``maximum_concurrent_rpcs``); the server has one
  worker thread per allowed call, so an admitted call never waits for a thread;
* a streaming call that moves no message for ``idle_s`` seconds is cancelled by
  :class:`IdleWatch`: a stalled ``Upload`` or an ``Attach`` whose reader stopped reading cannot
  hold its slot for longer than that.

With ``total`` at least ``per_org`` times the number of organizations, one organization holding
any number of calls open keeps at most ``per_org`` workers, and the others' calls are served.
Calls being refused count against ``total`` for the moment they take: an organization opening
new calls as fast as it can may have another's call refused too (gRPC's "Concurrent RPC limit
exceeded!"); clients treat both refusals as busy and try again with backoff
(:class:`~fedchain.errors.DataPlaneBusy`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from fedchain.errors import ConfigError, DataPlaneBusy

__all__ = ["Admission", "CallLimits", "IdleWatch"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallLimits:
    """How much of the data plane one caller, and all callers, may hold.

    ``total`` of ``None`` means ``per_org`` × (organizations + 1): every organization can use
    its whole share at once, with one share of room for calls being refused.
    """

    per_org: int = 8
    total: int | None = None
    idle_s: float = 60.0

    def __post_init__(self) -> None:
        if self.per_org < 1 or (self.total is not None and self.total < 1) or self.idle_s <= 0:
            raise ConfigError(
                f"data-plane limits must be positive: per_org={self.per_org}, "
                f"total={self.total}, idle_s={self.idle_s}"
            )

    def total_for(self, orgs: int) -> int:
        """The overall call limit for a consortium of ``orgs`` organizations."""
        return self.total if self.total is not None else self.per_org * (orgs + 1)


class Admission:
    """Counts running calls per organization; refuses one over ``per_org`` (DataPlaneBusy)."""

    def __init__(self, per_org: int) -> None:
        self.per_org = per_org
        self._lock = threading.Condition()
        self._running: Counter[str] = Counter()

    def enter(self, org: str) -> None:
        """Count one more call of ``org``, or raise DataPlaneBusy if it has ``per_org``."""
        with self._lock:
            if self._running[org] >= self.per_org:
                raise DataPlaneBusy(
                    f"busy: {org} already has {self.per_org} data-plane calls open "
                    "(the limit per organization); retry when one ends"
                )
            self._running[org] += 1
            self._lock.notify_all()

    def leave(self, org: str) -> None:
        """One call of ``org`` ended."""
        with self._lock:
            self._running[org] -= 1
            if self._running[org] <= 0:
                del self._running[org]
            self._lock.notify_all()

    def running(self, org: str) -> int:
        """Calls of ``org`` running now."""
        with self._lock:
            return self._running[org]

    def wait_running(self, org: str, count: int, timeout: float | None = None) -> bool:
        """Wait until ``org`` has exactly ``count`` calls running; False after ``timeout`` s."""
        with self._lock:
            return self._lock.wait_for(lambda: self._running[org] == count, timeout)


class IdleWatch:
    """Cancels streaming calls that moved no message for ``idle_s`` seconds.

    One daemon thread checks the watched calls a few times per ``idle_s``; a call is watched
    from :meth:`watch` until it ends, and every message it moves calls :meth:`touch`.
    """

    def __init__(self, idle_s: float) -> None:
        self.idle_s = idle_s
        self._lock = threading.Condition()
        self._last: dict[int, tuple[Any, float, str]] = {}  # id(context) -> context, time, what
        self._stopped = False
        self._thread: threading.Thread | None = None

    def watch(self, context: Any, what: str) -> None:
        """Watch the call of ``context`` (described as ``what`` in the log) until it ends."""
        key = id(context)
        with self._lock:
            self._last[key] = (context, time.monotonic(), what)
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(
                    target=self._run, name="dataplane-idle", daemon=True
                )
                self._thread.start()
        if not context.add_callback(lambda: self._forget(key)):
            self._forget(key)  # the call had already ended

    def touch(self, context: Any) -> None:
        """The call of ``context`` moved a message."""
        key = id(context)
        with self._lock:
            found = self._last.get(key)
            if found is not None:
                self._last[key] = (found[0], time.monotonic(), found[2])

    def stop(self) -> None:
        """Stop the watching thread (the server is stopping)."""
        with self._lock:
            self._stopped = True
            self._lock.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=5)
        with self._lock:  # a restarted server watches again
            self._stopped, self._thread = False, None

    def _forget(self, key: int) -> None:
        with self._lock:
            self._last.pop(key, None)

    def _run(self) -> None:
        period = min(max(self.idle_s / 4, 0.05), 5.0)
        while True:
            with self._lock:
                if self._stopped:
                    return
                self._lock.wait(period)
                now = time.monotonic()
                stale = [
                    (key, ctx, what)
                    for key, (ctx, last, what) in self._last.items()
                    if now - last > self.idle_s
                ]
                for key, _, _ in stale:
                    del self._last[key]
            for _, ctx, what in stale:
                _log.warning("cutting %s: no message for %.1f s", what, self.idle_s)
                ctx.cancel()
