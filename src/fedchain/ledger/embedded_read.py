"""Reading side of the embedded ledger: queries, ``wait`` and the in-process wake-up signal.

:class:`Reader` is the read-only half of :class:`~fedchain.ledger.embedded.EmbeddedLedger`
(kept apart so each module reads in one sitting). Every entry a handle hands on has had its
hash, position and **signature** checked (the signer's certificate chains to its organization's
CA in the consortium the file records, and the body names that organization): a member that
slipped a forged row into the file is caught by the first reader, not only by a later
``fedchain audit``. Each entry is verified once per process: a re-read, by this handle or any
other of the process on a ledger of the same consortium, compares the entry's hash with one
whose signature already verified (the hash covers the body, which names the signer, its
certificate, the position and the previous hash, so the same hash is the same signed content).
A read with many unverified entries checks their signatures on several threads (OpenSSL's
ECDSA verification runs without the GIL).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

from cryptography import x509

from fedchain.errors import CertificateError, LedgerCorrupted, PKIError, RecordError
from fedchain.ledger import sqlite_store as store
from fedchain.ledger.base import Entry, Query
from fedchain.ledger.chain import Body, SignerCache, decode_body
from fedchain.pki import Consortium, fingerprint
from fedchain.pki.signing import verify_signature

__all__ = ["Reader", "Signal", "decode_checked", "signal_for"]

#: ``wait`` checks ``PRAGMA data_version`` after 1 ms, doubling up to 8 ms while idle.
POLL_MIN: Final = 0.001
POLL_MAX: Final = 0.008
_FILTERS = ("run", "round", "kind", "org", "task")
#: Unverified entries in one read from which signatures are checked on several threads.
PARALLEL_FROM: Final = 64
_THREADS: Final = max(1, min(4, os.cpu_count() or 1))
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
#: (consortium CA fingerprints, entry hash) of entries whose signature verified in this process.
_VERIFIED: set[tuple[tuple[str, ...], bytes]] = set()
_VERIFIED_MAX: Final = 1 << 20


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(_THREADS, thread_name_prefix="ledger-verify")
        return _POOL


_Job = tuple[Any, bytes, bytes, Body]  # public key, body, signature, decoded body


def _verify_one(job: _Job) -> Exception | None:
    key, body, sig, _ = job
    try:
        verify_signature(key, body, sig)
    except CertificateError as exc:
        return exc
    return None


class Signal:
    """Wakes this process's waiters as soon as any of its handles on one file commits."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.generation = 0

    def notify(self) -> None:
        with self._cond:
            self.generation += 1
            self._cond.notify_all()

    def wait(self, generation: int, timeout: float) -> None:
        """Block up to ``timeout`` s unless a commit happened since ``generation`` was read."""
        with self._cond:
            if self.generation == generation:
                self._cond.wait(timeout)


_SIGNALS: dict[str, Signal] = {}
_SIGNALS_LOCK = threading.Lock()


def signal_for(path: Path) -> Signal:
    """The process-wide signal of the ledger file at ``path``."""
    key = os.path.realpath(path)
    with _SIGNALS_LOCK:
        return _SIGNALS.setdefault(key, Signal())


class Reader:
    """Queries and waits on an open ledger connection (guarded by a lock: handles are shared
    between threads, e.g. a watcher and a publisher)."""

    def __init__(
        self, path: Path, conn: sqlite3.Connection, signal: Signal, consortium: Consortium
    ) -> None:
        self.path = path
        self._conn = conn
        self._signal = signal
        self._lock = threading.RLock()
        self._signers = SignerCache(consortium)
        self._verified: dict[int, bytes] = {}  # seq -> the hash its signature was checked for
        self._cas = tuple(sorted(consortium.fingerprints().values()))

    @staticmethod
    def stored_consortium(conn: sqlite3.Connection, path: Path) -> Consortium:
        """The consortium recorded at creation: the ``cas`` table checked against entry 0."""
        with store.translate(path, seq=0):
            cas_rows = conn.execute("SELECT org, sha256, der FROM cas ORDER BY org").fetchall()
            genesis = conn.execute("SELECT hash, body FROM entries WHERE seq = 0").fetchone()
        if genesis is None:
            raise LedgerCorrupted(0, "the ledger has no consortium entry")
        record = decode_checked(0, genesis[0], genesis[1]).record
        if record.kind != "consortium":
            raise LedgerCorrupted(0, f"entry 0 is a {record.kind} record, not the consortium")
        try:
            cas = {str(org): x509.load_der_x509_certificate(der) for org, _, der in cas_rows}
            consortium = Consortium(name=record["name"], aggregator=record["aggregator"], cas=cas)
        except (ValueError, PKIError) as exc:
            raise LedgerCorrupted(0, f"the stored CA certificates are unusable: {exc}") from exc
        recorded = {o["id"]: o["ca_sha256"] for o in record["orgs"]}
        stored = {str(org): str(sha) for org, sha, _ in cas_rows}
        actual = {org: fingerprint(ca) for org, ca in cas.items()}
        if not recorded == stored == actual:
            raise LedgerCorrupted(0, "the stored CA certificates differ from the consortium entry")
        return consortium

    def metadata_get(self, query: Query | None = None) -> list[Entry]:
        """Entries matching ``query`` in ledger order (uses the indexed columns)."""
        query = query or Query()
        clauses, params = ["seq > ?"], [query.after]
        for name in _FILTERS:
            value = getattr(query, name)
            if value is not None:
                clauses.append(f"{name} = ?")
                params.append(value)
        where = " AND ".join(clauses)  # column names from _FILTERS only; values are bound
        sql = f"SELECT seq, hash, body, sig FROM entries WHERE {where} ORDER BY seq"  # noqa: S608
        if query.limit is not None:
            sql += " LIMIT ?"
            params.append(max(query.limit, 0))
        rows = self._fetch(sql, params)
        bodies = self._checked_all(rows)
        entries = [Entry(d.seq, d.record, d.org, d.ts, bytes(r[1]).hex()) for d, r in zip(
            bodies, rows, strict=True)]  # fmt: skip
        return [e for e in entries if query.matches(e)]

    def wait(self, after: int, timeout: float) -> list[Entry]:
        """Entries with ``seq > after``, waiting up to ``timeout`` s for the first one."""
        deadline = time.monotonic() + max(timeout, 0.0)
        interval = POLL_MIN
        seen: tuple[int, int] | None = None
        while True:
            generation = self._signal.generation
            version = int(self._fetch("PRAGMA data_version", [])[0][0])
            if seen != (version, generation):
                found = self.metadata_get(Query(after=after))
                if found:
                    return found
                seen = (version, generation)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            self._signal.wait(generation, min(interval, remaining))
            interval = min(interval * 2, POLL_MAX)

    def head(self) -> int:
        """The newest ``seq`` (-1 when empty)."""
        return int(self._fetch("SELECT COALESCE(MAX(seq), -1) FROM entries", [])[0][0])

    def close(self) -> None:
        """Close the connection (the last one to close checkpoints the WAL into the file)."""
        with self._lock, store.translate(self.path):
            self._conn.close()

    def _fetch(self, sql: str, params: list[Any]) -> list[Any]:
        with self._lock, store.translate(self.path):
            return self._conn.execute(sql, params).fetchall()

    def _rows_after(self, after: int) -> list[tuple[int, bytes, Body]]:
        """Entries after ``after``, each checked (hash, position, signature) and decoded."""
        sql = "SELECT seq, hash, body, sig FROM entries WHERE seq > ? ORDER BY seq"
        rows = self._fetch(sql, [after])
        bodies = self._checked_all(rows)
        return [(int(r[0]), r[1], d) for r, d in zip(rows, bodies, strict=True)]

    def _checked_all(self, rows: Sequence[Sequence[Any]]) -> list[Body]:
        """``(seq, hash, body, sig)`` rows, each checked by ``decode_checked`` and by its
        signature unless this process verified that hash already; the first bad one raises."""
        bodies, jobs = [], []
        for seq, digest, body, sig in rows:
            decoded = decode_checked(int(seq), digest, body)
            bodies.append(decoded)
            if self._verified.get(decoded.seq) != digest and (self._cas, digest) not in _VERIFIED:
                jobs.append(self._job(decoded, body, sig))
        if len(jobs) >= PARALLEL_FROM and _THREADS > 1:
            failures = list(_pool().map(_verify_one, jobs, chunksize=16))
        else:
            failures = [_verify_one(job) for job in jobs]
        for job, failure in zip(jobs, failures, strict=True):
            if failure is not None:
                seq = job[3].seq
                raise LedgerCorrupted(seq, f"the entry's signature does not verify: {failure}")
        if len(_VERIFIED) > _VERIFIED_MAX:
            _VERIFIED.clear()
        for _, body, _, decoded in jobs:
            digest = hashlib.sha256(body).digest()
            self._verified[decoded.seq] = digest
            _VERIFIED.add((self._cas, digest))
        return bodies

    def _job(self, decoded: Body, body: bytes, sig: Any) -> _Job:
        """What verifying one entry needs; its signer is resolved here, in ledger order."""
        seq = decoded.seq
        if not isinstance(sig, bytes):
            raise LedgerCorrupted(seq, "the entry's signature column is not a BLOB")
        try:
            org, key = self._signer(decoded)
        except CertificateError as exc:
            raise LedgerCorrupted(seq, f"the entry's signature does not verify: {exc}") from exc
        if org != decoded.org:
            raise LedgerCorrupted(seq, f"signed by {org} but written as {decoded.org}")
        return key, body, sig, decoded

    def _signer(self, decoded: Body) -> tuple[str, Any]:
        sha = decoded.cert_sha256
        if not self._signers.known(sha):
            row = self._fetch("SELECT der FROM certs WHERE sha256 = ?", [sha])
            if row and isinstance(row[0][0], bytes):
                self._signers.add(sha, row[0][0])
        return self._signers.check(sha, decoded.ts)

    def mark_verified(self, seq: int, digest_hex: str) -> None:
        """An entry this handle wrote and signed itself: no need to verify it again."""
        self._verified[seq] = bytes.fromhex(digest_hex)
        _VERIFIED.add((self._cas, self._verified[seq]))


def decode_checked(seq: int, digest: Any, body: Any) -> Body:
    """Decode a stored body after checking its hash and position (LedgerCorrupted if not).

    ``digest`` and ``body`` are column values as SQLite returns them: anything but a BLOB
    (a hand-edited row can hold TEXT or NULL) is damage too.
    """
    if not isinstance(digest, bytes) or not isinstance(body, bytes):
        raise LedgerCorrupted(seq, "the entry's hash or body column is not a BLOB")
    if hashlib.sha256(body).digest() != digest:
        raise LedgerCorrupted(seq, "the entry hash does not match its body")
    try:
        decoded = decode_body(body)
    except RecordError as exc:
        raise LedgerCorrupted(seq, f"the entry body is malformed: {exc}") from exc
    if decoded.seq != seq:
        raise LedgerCorrupted(seq, f"the body says seq {decoded.seq}")
    return decoded
