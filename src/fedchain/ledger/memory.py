"""In-process ledger for tests and single-process experiments: same rules, no persistence."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from fedchain.hashing import sha256_hex
from fedchain.ledger.base import Entry, Query, as_records
from fedchain.ledger.records import Record
from fedchain.ledger.rules import LedgerState

__all__ = ["MemoryLedger", "MemoryStore"]


class MemoryStore:
    """The shared list of entries; several :class:`MemoryLedger` handles write into one store."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.entries: list[Entry] = []
        self.state = LedgerState()
        self.clock = clock
        self.changed = threading.Condition()

    def append(self, records: Sequence[Record], signer: str) -> list[Entry]:
        with self.changed:
            self.state.admit_all(records, signer)
            ts = int(self.clock() * 1000)
            written = []
            for record in records:
                seq = len(self.entries)
                prev = self.entries[-1].hash if self.entries else "0" * 64
                digest = sha256_hex(bytes.fromhex(prev) + record.canonical)
                entry = Entry(seq, record, signer, ts, digest)
                self.entries.append(entry)
                written.append(entry)
            self.changed.notify_all()
            return written


class MemoryLedger:
    """A handle on a :class:`MemoryStore` that writes as organization ``org``."""

    def __init__(self, store: MemoryStore, org: str) -> None:
        self._store = store
        self._org = org

    @property
    def org(self) -> str:
        return self._org

    def metadata_publish(self, records: Record | Sequence[Record]) -> list[Entry]:
        return self._store.append(as_records(records), self._org)

    def metadata_get(self, query: Query | None = None) -> list[Entry]:
        query = query or Query()
        with self._store.changed:
            found = [e for e in self._store.entries[query.after + 1 :] if query.matches(e)]
        return found if query.limit is None else found[: query.limit]

    def wait(self, after: int, timeout: float) -> list[Entry]:
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._store.changed:
            while len(self._store.entries) <= after + 1:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._store.changed.wait(remaining):
                    break
            return list(self._store.entries[after + 1 :])

    def head(self) -> int:
        return len(self._store.entries) - 1

    def close(self) -> None:
        """Nothing to release."""
