"""Which organizations are connected right now: the aggregator's view, fed by ``Attach`` streams.

An organization keeps one long-lived ``Attach`` call open while it runs; the server counts it
present from the call's start until the call ends (client exit, crash, network loss — gRPC
keepalive and the periodic heartbeat notice a dead peer). Flower's ``Grid.get_node_ids`` is
answered from here, so strategies sample only organizations that are actually there.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import grpc

__all__ = ["HEARTBEAT_S", "AttachLoop", "Presence"]

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


class AttachLoop:
    """Client side: keep an ``Attach`` call open, reconnecting with backoff, until stopped."""

    def __init__(self, call: Callable[[], Iterator[bytes]]) -> None:
        self._call = call
        self._stop = threading.Event()
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
        delay, warned = 0.1, False
        while not self._stop.is_set():
            try:
                self._stream = self._call()
                for _ in self._stream:
                    self.attached.set()
                    delay, warned = 0.1, False
                    if self._stop.is_set():
                        return
            except grpc.RpcError as exc:
                if self._stop.is_set():
                    return
                # Once per outage as a warning (a refused certificate looks like this too),
                # then quietly: the aggregator may simply be restarting.
                _log.log(
                    logging.INFO if warned else logging.WARNING,
                    "cannot attach to the aggregator (%s: %s); retrying",
                    exc.code(),
                    exc.details() if isinstance(exc, grpc.Call) else exc,
                )
                warned = True
            self.attached.clear()
            self._stop.wait(delay)
            delay = min(delay * 2, 5.0)
