"""Ledger anchoring of secure-aggregation keys (G3): the hook between a client mod and the ledger.

A Flower client mod sees Flower messages only. To anchor its round keys it needs two things from
whoever runs the ClientApp: a way to publish its public keys on the ledger for the task it is
handling, and a way to read the keys other organizations published for a task. fedchain's
:class:`~fedchain.runtime.client.ClientRuntime` provides both by entering :func:`anchored` with a
:class:`LedgerAnchor` around every ClientApp call; the mod finds it with :func:`current_anchor`.

Outside fedchain (plain Flower, an in-process grid) there is no anchor: ``current_anchor()`` is
None, and the mod then trusts the keys the aggregator relays -- unless it was built with
``require_anchor=True``, in which case it refuses to take part. The anchor is a context variable,
so concurrent ClientApp calls in different threads each see their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

from fedchain.errors import ProtocolError
from fedchain.ledger import Ledger, Query, parse_record
from fedchain.runtime.nodes import node_id
from fedchain.runtime.retry import publish, retry_unavailable
from fedchain.secagg import PublicKeys

__all__ = ["KeyAnchor", "LedgerAnchor", "anchored", "current_anchor"]


class KeyAnchor(Protocol):
    """What the secure-aggregation client mod needs from a ledger."""

    @property
    def task(self) -> str:
        """The ledger task whose message is being handled."""
        ...

    @property
    def round(self) -> int:
        """The ledger round of :attr:`task`."""
        ...

    def publish_keys(self, keys: PublicKeys) -> None:
        """Publish this organization's round keys for :attr:`task` (once per task)."""
        ...

    def trusted_keys(self, task: str) -> Mapping[int, PublicKeys]:
        """The keys published for ``task``, by the Flower node id of their owner."""
        ...


_CURRENT: ContextVar[KeyAnchor | None] = ContextVar("fedchain_key_anchor", default=None)


@contextmanager
def anchored(anchor: KeyAnchor) -> Iterator[KeyAnchor]:
    """Make ``anchor`` the current one for the duration of the block (one ClientApp call)."""
    token = _CURRENT.set(anchor)
    try:
        yield anchor
    finally:
        _CURRENT.reset(token)


def current_anchor() -> KeyAnchor | None:
    """The anchor of the ClientApp call in progress, or None when no ledger is available."""
    return _CURRENT.get()


class LedgerAnchor:
    """A :class:`KeyAnchor` over a :class:`~fedchain.ledger.Ledger` handle of one organization.

    Keys are ``keys`` records (``{"enc": hex, "mask": hex}``) written by their owner, who must
    be a recipient of the task (the ledger's write rules). ``node_of`` maps an organization id to
    the Flower node id the aggregator addresses it by (fedchain's :func:`node_id` by default).
    """

    def __init__(
        self, ledger: Ledger, *, run: str, round: int, task: str,
        node_of: Callable[[str], int] = node_id,
    ) -> None:
        self._ledger, self._run, self._round, self._task = ledger, run, round, task
        self._node_of = node_of

    @property
    def task(self) -> str:
        return self._task

    @property
    def round(self) -> int:
        return self._round

    def publish_keys(self, keys: PublicKeys) -> None:
        record = {"v": 1, "kind": "keys", "org": self._ledger.org, "run": self._run,
                  "round": self._round, "task": self._task,
                  "keys": {"enc": keys.enc.hex(), "mask": keys.mask.hex()}}
        batch = parse_record(record)
        publish(self._ledger, batch, what="publish round keys")

    def trusted_keys(self, task: str) -> Mapping[int, PublicKeys]:
        found: dict[int, PublicKeys] = {}
        query = Query(run=self._run, kind="keys", task=task)
        entries = retry_unavailable(lambda: self._ledger.metadata_get(query), what="read keys")
        for entry in entries:
            record = entry.record
            if entry.signer != record.org:
                continue  # the ledger refuses this; never trust it if a backend did not
            try:
                keys = PublicKeys(bytes.fromhex(record["keys"]["enc"]),
                                  bytes.fromhex(record["keys"]["mask"]))
            except (KeyError, TypeError, ValueError, ProtocolError):
                continue  # unusable keys count as never published
            found[self._node_of(str(record.org))] = keys
        return found
