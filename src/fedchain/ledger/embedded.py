"""The embedded ledger: one SQLite file (WAL), append-only, hash-chained and signed.

Every entry is signed by the writing organization's identity (:mod:`fedchain.ledger.chain`) and
admitted by the same write rules as every backend (:class:`~fedchain.ledger.rules.LedgerState`).
Several processes on one host share the file:

* **Writes** run in ``BEGIN IMMEDIATE`` (SQLite's single writer lock). Before taking it the
  handle verifies the signatures of entries other processes wrote since it last looked; inside
  it, it catches its in-memory rule state up with them (and with any written meanwhile), then
  checks the batch, then signs each body — which names its ``seq`` and the previous hash, so
  the signature commits to the position — and commits. A batch is one
  transaction; a crash before COMMIT leaves nothing (SQLite's WAL atomicity).
* **Watching**: ``wait`` re-reads only when ``PRAGMA data_version`` says another connection
  committed, checking every 1 ms and backing off to 8 ms while idle, so another process's
  entry arrives within a few milliseconds; handles in the same process are also woken at once
  through a shared condition variable. No inotify, no busy loop.
* **Durability**: ``"normal"`` (default) is ``synchronous=NORMAL`` — in WAL mode a crash of the
  process never loses or tears a committed entry, and power loss can only drop the last commits
  as a whole suffix (the chain stays intact). ``"full"`` fsyncs every commit (about 3x slower).

An identity whose certificate does not chain to a consortium CA is refused with
:class:`~fedchain.errors.CertificateError` when the handle is opened (and at each write, if the
certificate has expired since).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from cryptography.hazmat.primitives import serialization

from fedchain.errors import CertificateError, LedgerCorrupted, LedgerError, PKIError, RecordError
from fedchain.ledger import sqlite_store as store
from fedchain.ledger.base import Entry, as_records
from fedchain.ledger.chain import GENESIS_PREV, consortium_record, encode_body, ms_to_datetime
from fedchain.ledger.embedded_read import Reader, signal_for
from fedchain.ledger.records import Record
from fedchain.ledger.rules import LedgerState
from fedchain.pki import Consortium, Identity

__all__ = ["MAX_BATCH", "EmbeddedLedger"]

Clock = Callable[[], float]
#: Most records one ``metadata_publish`` may append (one transaction).
MAX_BATCH = 1024


class EmbeddedLedger(Reader):
    """A handle on an embedded ledger file, writing as one identity (or read-only)."""

    def __init__(
        self, path: Path, conn: sqlite3.Connection, consortium: Consortium,
        identity: Identity | None, clock: Clock,
    ) -> None:  # fmt: skip
        super().__init__(path, conn, signal_for(path), consortium)
        self.consortium = consortium
        self._identity = identity
        self._clock = clock
        self._state: LedgerState | None = None
        self._seen = -1
        self._head_hash = GENESIS_PREV
        self._cert_stored = False
        self._cert_sha = "" if identity is None else identity.fingerprint
        self._version: object = None  # PRAGMA data_version when others' entries were checked

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def create(
        cls, path: Path | str, consortium: Consortium, aggregator_identity: Identity, *,
        clock: Clock = time.time, durability: store.Durability = "normal",
    ) -> EmbeddedLedger:  # fmt: skip
        """Create a ledger whose entry 0 is the consortium record, signed by the aggregator.

        The file is built under a temporary name and linked into place, so ``path`` either
        does not exist or holds a complete ledger; an existing ``path`` raises LedgerError.
        """
        path = Path(path)
        if path.exists() or path.is_symlink():
            raise LedgerError(f"{path} already exists; refusing to overwrite a ledger")
        ts = int(clock() * 1000)
        _require_key(aggregator_identity)
        org = consortium.org_of(aggregator_identity.cert, now=ms_to_datetime(ts))
        if org != consortium.aggregator:
            raise CertificateError(
                f"the ledger is created by the aggregator ({consortium.aggregator}), not {org}"
            )
        try:
            path.absolute().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LedgerError(f"cannot create the folder of {path}: {exc.strerror}") from exc
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.creating")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except OSError as exc:  # say it of the ledger, not of the temporary file
            raise LedgerError(f"cannot create {path}: {exc.strerror}") from exc
        try:
            _write_genesis(tmp, consortium, aggregator_identity, ts)
            _link_into_place(tmp, path)
        finally:
            for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
                leftover.unlink(missing_ok=True)
        return cls.open(path, aggregator_identity, consortium=consortium, clock=clock,
                        durability=durability)  # fmt: skip

    @classmethod
    def open(
        cls, path: Path | str, identity: Identity | None = None, *,
        consortium: Consortium | None = None, clock: Clock = time.time,
        durability: store.Durability = "normal", busy_timeout: float = 5.0,
    ) -> EmbeddedLedger:  # fmt: skip
        """Open an existing ledger; ``identity=None`` gives a read-only handle.

        ``consortium``, when given, must be the one recorded in the ledger (LedgerError
        otherwise). LedgerNotFound: no file, unreadable, or not a fedchain ledger.
        """
        path = Path(path)
        conn = store.connect(
            path, readonly=identity is None, durability=durability, busy_timeout=busy_timeout
        )
        try:
            store.read_meta(conn, path)
            stored = Reader.stored_consortium(conn, path)
            if consortium is not None and not _same_consortium(stored, consortium):
                raise LedgerError(f"{path} belongs to another consortium ({stored.name})")
            if identity is not None:
                _require_key(identity)
                org = stored.org_of(identity.cert, now=ms_to_datetime(int(clock() * 1000)))
                if org != identity.org:
                    raise CertificateError(f"identity claims {identity.org} but chains to {org}")
        except BaseException:
            conn.close()
            raise
        return cls(path, conn, stored, identity, clock)

    def __enter__(self) -> EmbeddedLedger:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def org(self) -> str:
        """The organization this handle writes as ("" for a read-only handle)."""
        return "" if self._identity is None else self._identity.org

    # -- writing ------------------------------------------------------------------------------

    def metadata_publish(self, records: Record | Sequence[Record]) -> list[Entry]:
        """Append ``records`` atomically, signed by this handle's identity."""
        batch = as_records(records)
        if len(batch) > MAX_BATCH:
            raise RecordError(f"a batch holds at most {MAX_BATCH} records, got {len(batch)}")
        identity = self._identity
        if identity is None:
            raise LedgerError(f"{self.path} was opened read-only (no identity)")
        if not batch:
            return []
        with self._lock, store.translate(self.path):
            # Verify others' new entries before taking the write lock, so the catch-up inside
            # it (which must see everything) finds most of them checked already. Only when
            # another connection committed since we last looked (SQLite's data_version).
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
            if version != self._version:
                self._rows_after(self._seen)
                self._version = version
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                ts = max(int(self._clock() * 1000), 0)
                entries = self._append_locked(batch, identity, ts)
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            self._seen, self._head_hash = entries[-1].seq, entries[-1].hash
            self._cert_stored = True
            for entry in entries:
                self.mark_verified(entry.seq, entry.hash)
        self._signal.notify()
        return entries

    def _append_locked(self, batch: list[Record], identity: Identity, ts: int) -> list[Entry]:
        """Inside the write transaction: catch up, check the rules, sign and insert."""
        self._signer_valid_at(identity, ts)
        state = self._catch_up()
        state.admit_all(batch, identity.org)
        try:
            return self._insert(batch, identity, ts)
        except BaseException:
            self._state = None  # the batch is in the state but not on disk: rebuild next time
            raise

    def _signer_valid_at(self, identity: Identity, ts: int) -> None:
        when = ms_to_datetime(ts)
        cert, ca = identity.cert, self.consortium.cas[identity.org]
        start = max(cert.not_valid_before_utc, ca.not_valid_before_utc)
        end = min(cert.not_valid_after_utc, ca.not_valid_after_utc)
        if not start <= when <= end:
            raise CertificateError(f"the certificate of {identity.name} is not valid at {when}")

    def _catch_up(self) -> LedgerState:
        """Admit entries written since this handle last looked (by anyone) into its state."""
        if self._state is None:
            self._state, self._seen, self._head_hash = LedgerState(), -1, GENESIS_PREV
        state = self._state
        for seq, digest, decoded in self._rows_after(self._seen):
            if decoded.prev != self._head_hash:
                raise LedgerCorrupted(seq, "prev does not match the previous entry's hash")
            try:
                state.admit(decoded.record, decoded.org)
            except LedgerError as exc:
                self._state = None
                raise LedgerCorrupted(seq, f"stored entry breaks a write rule: {exc}") from exc
            self._seen, self._head_hash = seq, bytes(digest).hex()
        return state

    def _insert(self, batch: list[Record], identity: Identity, ts: int) -> list[Entry]:
        cert_sha = self._cert_sha
        if not self._cert_stored:
            self._conn.execute(
                "INSERT OR IGNORE INTO certs (sha256, der) VALUES (?, ?)",
                (cert_sha, _der(identity)),
            )
        prev, entries = self._head_hash, []
        for offset, record in enumerate(batch):
            seq = self._seen + 1 + offset
            body = encode_body(seq, prev, record, ts, identity.org, cert_sha)
            prev = store_entry(self._conn, seq, body, identity.sign(body), record)
            entries.append(Entry(seq, record, identity.org, ts, prev))
        return entries


def store_entry(conn: sqlite3.Connection, seq: int, body: bytes, sig: bytes, record: Record) -> str:
    """Insert one entry row; return its hash (hex)."""
    digest = hashlib.sha256(body).digest()
    conn.execute(
        "INSERT INTO entries (seq, hash, body, sig, kind, org, run, round, task)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (seq, digest, body, sig, record.kind, record.org, record.run, record.round, record.task),
    )
    return digest.hex()


def _require_key(identity: Identity) -> None:
    """A key to sign with, and the one the certificate names (records are stored with the
    certificate: another key would write entries in that certificate's name)."""
    if identity.key is None:
        raise PKIError(f"identity {identity.org}/{identity.name} has no private key to sign with")
    if identity.key.public_key() != identity.cert.public_key():
        raise PKIError(
            f"the key given for {identity.org}/{identity.name} is not the one its certificate "
            "names"
        )


def _der(identity: Identity) -> bytes:
    return identity.cert.public_bytes(serialization.Encoding.DER)


def _same_consortium(a: Consortium, b: Consortium) -> bool:
    return (a.name, a.aggregator, a.fingerprints()) == (b.name, b.aggregator, b.fingerprints())


def _write_genesis(tmp: Path, consortium: Consortium, identity: Identity, ts: int) -> None:
    """Write schema, CAs, the aggregator's certificate and entry 0 into a new file ``tmp``."""
    conn = store.connect(tmp, readonly=False, durability="full", create=True)
    try:
        with store.translate(tmp):
            conn.execute("BEGIN IMMEDIATE")
            store.create_schema(conn)
            conn.executemany(
                "INSERT INTO cas (org, sha256, der) VALUES (?, ?, ?)",
                [(org, sha, consortium.cas[org].public_bytes(serialization.Encoding.DER))
                 for org, sha in consortium.fingerprints().items()],
            )  # fmt: skip
            conn.execute(
                "INSERT INTO certs (sha256, der) VALUES (?, ?)",
                (identity.fingerprint, _der(identity)),
            )
            record = consortium_record(consortium)
            body = encode_body(0, GENESIS_PREV, record, ts, identity.org, identity.fingerprint)
            store_entry(conn, 0, body, identity.sign(body), record)
            conn.execute("COMMIT")
    finally:
        conn.close()


def _link_into_place(tmp: Path, path: Path) -> None:
    """Publish the finished file at ``path`` without ever replacing an existing one."""
    try:
        os.link(tmp, path)
    except FileExistsError as exc:
        raise LedgerError(f"{path} already exists; refusing to overwrite a ledger") from exc
    except OSError as exc:
        raise LedgerError(f"cannot create {path}: {exc.strerror}") from exc
