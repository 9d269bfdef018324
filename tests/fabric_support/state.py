"""World state with versions, transaction simulation, and commit-time validation.

As on a Fabric peer with LevelDB: a simulation reads committed state only (never its own
writes), records every read with the version it saw (``(block, tx)`` or none) and every range
scan with the keys it returned; its writes are buffered. At commit, a transaction is valid only
if every read still has the same version (else ``MVCC_READ_CONFLICT``) and every range scan
would return the same keys and versions (else ``PHANTOM_READ_CONFLICT``); then its writes
apply with version ``(block, tx index)``. Validation works on the serialized read/write set in
the transaction, not on Python objects, exactly as a committing peer must.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

from fabric_protos.ledger.queryresult import kv_query_result_pb2
from fabric_protos.ledger.rwset import rwset_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2

Version = tuple[int, int]
Committed = dict[str, tuple[bytes, Version]]


class WorldState:
    """Committed key → (value, version); replaced wholesale on commit (snapshots are cheap)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: Committed = {}

    def snapshot(self) -> Committed:
        with self._lock:
            return self._values

    def apply(self, updates: dict[str, bytes | None], version: Version) -> None:
        with self._lock:
            values = dict(self._values)
            for key, value in updates.items():
                if value is None:
                    values.pop(key, None)
                else:
                    values[key] = (value, version)
            self._values = values


def scan(values: Committed, start: str, end: str) -> list[str]:
    """Keys in ``[start, end)`` in UTF-8 byte order ("" as end: no upper bound)."""
    return sorted(k for k in values if k >= start and (end == "" or k < end))


@dataclass
class _Range:
    start: str
    end: str
    keys: list[str]
    served: int = 0
    reads: list[tuple[str, Version]] = field(default_factory=list)


class Simulation:
    """One transaction's view of a snapshot: reads, range scans, buffered writes."""

    _ids = itertools.count(1)

    def __init__(self, snapshot: Committed, namespace: str, page_size: int = 100) -> None:
        self.namespace = namespace
        self.page_size = page_size
        self._values = snapshot
        self._reads: dict[str, Version | None] = {}
        self._writes: dict[str, bytes | None] = {}
        self._ranges: dict[str, _Range] = {}
        self._finished: list[_Range] = []

    def get(self, key: str) -> bytes:
        found = self._values.get(key)
        self._reads.setdefault(key, found[1] if found else None)
        return found[0] if found else b""

    def put(self, key: str, value: bytes) -> None:
        if not key:
            raise ValueError("empty key")
        self._writes[key] = value

    def delete(self, key: str) -> None:
        self._writes[key] = None

    def open_range(self, start: str, end: str) -> tuple[str, list[bytes], bool]:
        """Start a range scan; return its id, the first page of KV bytes and has_more."""
        query_id = f"q{next(self._ids)}"
        self._ranges[query_id] = _Range(start, end, scan(self._values, start, end))
        return (query_id, *self.next_page(query_id))

    def next_page(self, query_id: str) -> tuple[list[bytes], bool]:
        scan_ = self._ranges[query_id]
        page = scan_.keys[scan_.served : scan_.served + self.page_size]
        scan_.served += len(page)
        results = []
        for key in page:
            value, version = self._values[key]
            scan_.reads.append((key, version))
            kv = kv_query_result_pb2.KV(namespace=self.namespace, key=key, value=value)
            results.append(kv.SerializeToString())
        return results, scan_.served < len(scan_.keys)

    def close_range(self, query_id: str) -> None:
        self._finished.append(self._ranges.pop(query_id))

    def rwset(self) -> bytes:
        """The serialized ``rwset.TxReadWriteSet`` (reads and writes sorted by key)."""
        kv = kv_rwset_pb2.KVRWSet()
        for key in sorted(self._reads):
            read = kv.reads.add(key=key)
            if (version := self._reads[key]) is not None:
                read.version.block_num, read.version.tx_num = version
        for scan_ in [*self._finished, *self._ranges.values()]:
            info = kv.range_queries_info.add(
                start_key=scan_.start, end_key=scan_.end,
                itr_exhausted=scan_.served >= len(scan_.keys),
            )  # fmt: skip
            for key, (block, tx) in scan_.reads:
                info.raw_reads.kv_reads.add(
                    key=key, version=kv_rwset_pb2.Version(block_num=block, tx_num=tx)
                )
        for key in sorted(self._writes):
            value = self._writes[key]
            kv.writes.add(key=key, is_delete=value is None, value=value or b"")
        tx = rwset_pb2.TxReadWriteSet(data_model=rwset_pb2.TxReadWriteSet.DataModel.KV)
        tx.ns_rwset.add(namespace=self.namespace, rwset=kv.SerializeToString())
        data: bytes = tx.SerializeToString()
        return data


def validate(rwset: bytes, values: Committed) -> tuple[str, dict[str, bytes | None]]:
    """Check a serialized read/write set against ``values``: (validation code, writes)."""
    tx = rwset_pb2.TxReadWriteSet.FromString(rwset)
    writes: dict[str, bytes | None] = {}
    for ns in tx.ns_rwset:
        kv = kv_rwset_pb2.KVRWSet.FromString(ns.rwset)
        for read in kv.reads:
            current = values.get(read.key)
            seen = (
                (read.version.block_num, read.version.tx_num) if read.HasField("version") else None
            )
            if (current[1] if current else None) != seen:
                return "MVCC_READ_CONFLICT", {}
        for info in kv.range_queries_info:
            if not _same_range(info, values):
                return "PHANTOM_READ_CONFLICT", {}
        for write in kv.writes:
            writes[write.key] = None if write.is_delete else bytes(write.value)
    return "VALID", writes


def _same_range(info: Any, values: Committed) -> bool:
    reads = [(r.key, (r.version.block_num, r.version.tx_num)) for r in info.raw_reads.kv_reads]
    keys = scan(values, info.start_key, info.end_key)
    if not info.itr_exhausted:
        keys = [k for k in keys if reads and k <= reads[-1][0]]
    return [(k, values[k][1]) for k in keys] == reads
