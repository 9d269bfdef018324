"""Following the chaincode's events: the ledger order, entry positions, and resuming.

Every ``metadataPublish`` transaction emits one ``fedchain.records`` event whose payload is the
JSON array of its canonical records. The Gateway streams these per block, in transaction
order, so the events fix the ledger order that the chaincode itself cannot see. An entry's
``seq`` packs its place into one increasing integer::

    seq = block << 32 | position << 16 | index

where ``position`` is the event's place among the chaincode's events in the block (one event
per valid transaction) and ``index`` the record's place in its transaction. Both stay below
2**16 (a transaction carries at most 1,024 records; a block holds far fewer than 65,536
transactions with a sane BatchSize), and blocks below 2**31 keep ``seq`` under 2**63.

:class:`EventIndex` holds what has been seen; :class:`ResumeFile` optionally persists it as
JSON lines (one per transaction, appended), so a restarted process resumes from the last block
seen instead of replaying the channel; :class:`Follower` is the thread that reads the stream,
reconnecting with backoff from the last block it saw.
"""

from __future__ import annotations

import bisect
import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from fedchain.errors import FedchainError, GatewayError, LedgerError
from fedchain.ledger.canonical import loads
from fedchain.ledger.records import Record, parse_record

__all__ = [
    "EVENT_NAME",
    "EventIndex",
    "Follower",
    "IndexedTx",
    "ResumeFile",
    "pack_seq",
    "unpack_seq",
]

log = logging.getLogger(__name__)

EVENT_NAME: Final = "fedchain.records"
_FIELD: Final = 1 << 16
_FORMAT: Final = "fedchain-fabric-index"


def pack_seq(block: int, position: int, index: int) -> int:
    """One increasing integer for (block, position in block, record index in transaction)."""
    if not (0 <= position < _FIELD and 0 <= index < _FIELD and 0 <= block < 1 << 31):
        raise LedgerError(f"ledger position out of range: {(block, position, index)}")
    return block << 32 | position << 16 | index


def unpack_seq(seq: int) -> tuple[int, int, int]:
    """The inverse of :func:`pack_seq`."""
    return seq >> 32, (seq >> 16) & (_FIELD - 1), seq & (_FIELD - 1)


@dataclass(frozen=True)
class IndexedTx:
    """One publishing transaction as the event stream delivered it."""

    block: int
    position: int
    tx_id: str
    records: tuple[Record, ...]

    @property
    def first_seq(self) -> int:
        return pack_seq(self.block, self.position, 0)

    @property
    def last_seq(self) -> int:
        return pack_seq(self.block, self.position, len(self.records) - 1)


def parse_event_records(payload: bytes) -> tuple[Record, ...]:
    """The records of a ``fedchain.records`` event payload (a JSON array of records)."""
    value = loads(payload)
    if not isinstance(value, list) or not value:
        raise LedgerError("a fedchain.records event must carry a non-empty JSON array")
    return tuple(parse_record(item) for item in value)


class EventIndex:
    """Transactions seen so far, in ledger order (not thread-safe; the ledger locks it)."""

    def __init__(self) -> None:
        self._txs: list[IndexedTx] = []
        self._last: list[int] = []  # last_seq of each tx, for bisect
        self._by_id: dict[str, IndexedTx] = {}

    def add(self, tx: IndexedTx) -> bool:
        """Record ``tx``; False if it is already known (replays after a resume are skipped)."""
        if tx.tx_id in self._by_id:
            return False
        if self._last and tx.first_seq <= self._last[-1]:
            raise LedgerError(f"event for {tx.tx_id} arrived out of ledger order")
        self._txs.append(tx)
        self._last.append(tx.last_seq)
        self._by_id[tx.tx_id] = tx
        return True

    def get(self, tx_id: str) -> IndexedTx | None:
        return self._by_id.get(tx_id)

    def after(self, seq: int) -> list[IndexedTx]:
        """Transactions holding at least one entry with a position greater than ``seq``."""
        return self._txs[bisect.bisect_right(self._last, seq) :]

    @property
    def head(self) -> int:
        return self._last[-1] if self._last else -1

    @property
    def resume_block(self) -> int:
        """Where to restart the stream: the last block seen (its rest may be missing), or 0."""
        return self._txs[-1].block if self._txs else 0

    def __len__(self) -> int:
        return len(self._txs)

    def tx_ids(self) -> set[str]:
        return set(self._by_id)


class ResumeFile:
    """The index as JSON lines: a header, then one ``{b, p, tx, records}`` line per transaction."""

    def __init__(self, path: Path, channel: str, chaincode: str) -> None:
        self.path = path
        self._header = {"format": _FORMAT, "channel": channel, "chaincode": chaincode}

    def load(self) -> list[IndexedTx]:
        """Saved transactions, or [] for a missing, foreign or unreadable file."""
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        except OSError as exc:
            log.warning("ignoring unreadable Fabric resume file %s: %s", self.path, exc)
            return []
        if not lines or _json(lines[0]) != self._header:
            return []
        found = []
        for line in lines[1:]:
            item = _json(line)
            try:
                records = tuple(parse_record(r) for r in item["records"])
                found.append(IndexedTx(int(item["b"]), int(item["p"]), str(item["tx"]), records))
            except (FedchainError, KeyError, TypeError, ValueError):
                break  # a torn last line after a crash: resume from what is intact
        return found

    def reset(self, txs: Iterable[IndexedTx] = ()) -> None:
        """Rewrite the file with a header and ``txs``."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(
            "".join(_line(x) for x in [self._header, *(_tx_line(t) for t in txs)]), "utf-8"
        )
        tmp.replace(self.path)

    def append(self, txs: Sequence[IndexedTx]) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write("".join(_line(_tx_line(t)) for t in txs))


def _json(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def _line(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True) + "\n"


def _tx_line(tx: IndexedTx) -> dict[str, Any]:
    return {"b": tx.block, "p": tx.position, "tx": tx.tx_id,
            "records": [loads(r.canonical) for r in tx.records]}  # fmt: skip


class Follower(threading.Thread):
    """Reads ``fedchain.records`` events and hands each transaction to ``deliver``.

    ``open_stream(start_block)`` returns a :class:`~fedchain.ledger.fabric.events.ChaincodeEvents`.
    On a stream failure the follower reports it through ``on_error`` and reconnects after
    ``delays`` (the last delay repeats) from the block returned by ``resume_block()``. A
    malformed event is reported and skipped: one bad payload must not stop the ledger.
    """

    def __init__(
        self,
        open_stream: Callable[[int], Any],
        resume_block: Callable[[], int],
        deliver: Callable[[IndexedTx], None],
        on_error: Callable[[Exception | None], None],
        delays: Sequence[float],
    ) -> None:
        super().__init__(name="fabric-follower", daemon=True)
        self._open, self._resume, self._deliver = open_stream, resume_block, deliver
        self._on_error, self._delays = on_error, list(delays) or [1.0]
        self._halt = threading.Event()
        self._stream: Any = None
        self._lock = threading.Lock()

    def run(self) -> None:
        failures = 0
        while not self._halt.is_set():
            try:
                with self._lock:
                    if self._halt.is_set():
                        return
                    self._stream = self._open(self._resume())
                for event in self._stream:
                    failures = 0
                    self._on_error(None)
                    self._handle(event)
                if not self._halt.is_set():
                    raise GatewayError("the chaincode event stream ended")
            except GatewayError as exc:
                if self._halt.is_set():
                    return
                self._on_error(exc)
                delay = self._delays[min(failures, len(self._delays) - 1)]
                failures += 1
                log.warning("chaincode event stream failed (retrying in %.1fs): %s", delay, exc)
                self._halt.wait(delay)

    def _handle(self, event: Any) -> None:
        if event.name != EVENT_NAME:
            return
        try:
            records = parse_event_records(event.payload)
        except FedchainError as exc:
            log.error("skipping malformed event of transaction %s: %s", event.tx_id, exc)
            return
        self._deliver(IndexedTx(event.block_number, event.index, event.tx_id, records))

    def stop(self) -> None:
        """Cancel the stream and end the thread (also fine before :meth:`start`)."""
        with self._lock:
            self._halt.set()
            if self._stream is not None:
                self._stream.close()
        if self.ident is not None:
            self.join(10)
