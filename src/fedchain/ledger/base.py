"""The ``Ledger`` protocol every backend implements, and the values it trades in.

The seed protocol's two operations are ``metadata_publish`` and ``metadata_get``; ``wait``
blocks until entries newer than a position exist, and :func:`watch` turns it into an iterator,
so callers follow the ledger without fixed-interval polling of their own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from fedchain.ledger.records import Record, parse_record

__all__ = ["Entry", "Ledger", "Query", "as_records", "watch"]


@dataclass(frozen=True)
class Entry:
    """One written record with its place on the ledger.

    ``seq`` is the backend's position (strictly increasing, comparable, used by ``wait``);
    ``hash`` identifies the entry on its backend (chain hash or transaction id); ``ts`` is the
    write time in Unix milliseconds as the ledger saw it; ``signer`` is the writing organization.
    """

    seq: int
    record: Record
    signer: str
    ts: int
    hash: str


@dataclass(frozen=True)
class Query:
    """Filter for ``metadata_get``: every field that is set must match; ``after`` is exclusive."""

    run: str | None = None
    round: int | None = None
    kind: str | None = None
    org: str | None = None
    task: str | None = None
    after: int = -1
    limit: int | None = None

    def matches(self, entry: Entry) -> bool:
        record = entry.record
        return (
            entry.seq > self.after
            and (self.kind is None or record.kind == self.kind)
            and (self.org is None or record.org == self.org)
            and (self.run is None or record.run == self.run)
            and (self.round is None or record.round == self.round)
            and (self.task is None or record.task == self.task)
        )


@runtime_checkable
class Ledger(Protocol):
    """What fedchain needs from a ledger: publish, query, and wait for new entries."""

    @property
    def org(self) -> str:
        """The organization this handle writes as."""
        ...

    def metadata_publish(self, records: Record | Sequence[Record]) -> list[Entry]:
        """Append records atomically (all or none); raise ``RuleViolation`` when refused."""
        ...

    def metadata_get(self, query: Query | None = None) -> list[Entry]:
        """Entries matching ``query`` in ledger order."""
        ...

    def wait(self, after: int, timeout: float) -> list[Entry]:
        """Entries with ``seq > after``, blocking up to ``timeout`` s until one exists."""
        ...

    def head(self) -> int:
        """The position of the newest entry (-1 for an empty ledger)."""
        ...

    def close(self) -> None:
        """Release the handle's resources."""
        ...


def watch(
    ledger: Ledger, after: int = -1, *, deadline: float | None = None, step: float = 1.0
) -> Iterator[Entry]:
    """Yield entries newer than ``after`` as they are written, until ``deadline`` (monotonic).

    Without a deadline the iterator never ends by itself; the consumer stops it by leaving the
    loop. ``step`` bounds each blocking wait, so a closed consumer is noticed promptly.
    """
    while True:
        remaining = step if deadline is None else min(step, deadline - time.monotonic())
        if remaining <= 0:
            return
        for entry in ledger.wait(after, remaining):
            after = entry.seq
            yield entry


def as_records(records: Record | Sequence[Record] | Sequence[dict[str, Any]]) -> list[Record]:
    """Normalise the argument of ``metadata_publish`` to a list of validated records."""
    if isinstance(records, Record):
        return [records]
    return [r if isinstance(r, Record) else parse_record(r) for r in records]
