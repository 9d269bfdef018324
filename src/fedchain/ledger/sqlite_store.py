"""The SQLite file behind the embedded ledger: schema, connections, sqlite3 error translation.

Shared by :mod:`fedchain.ledger.embedded` (reads and writes) and :mod:`fedchain.ledger.audit`
(reads only). This is the one place where ``sqlite3`` exceptions become fedchain errors.

Tables::

    meta(key, value)            format = "fedchain-ledger", version = "1"
    cas(org, sha256, der)       the consortium CA certificates, written at creation
    certs(sha256, der)          every signer certificate, by SHA-256 of its DER
    entries(seq, hash, body, sig, kind, org, run, round, task)

``body`` is the canonical entry body (:mod:`fedchain.ledger.chain`), ``hash`` its SHA-256 and
``sig`` the signer's signature over it; kind/org/run/round/task are copies of record fields,
indexed for ``metadata_get`` (audit checks they agree with the body). Triggers refuse UPDATE and
DELETE, so a mistake cannot rewrite history; a deliberate edit (dropping the triggers) is what
the hash chain and ``fedchain audit`` are for.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Final, Literal
from urllib.parse import quote

from fedchain.errors import LedgerCorrupted, LedgerError, LedgerNotFound, LedgerUnavailable

__all__ = [
    "FORMAT",
    "VERSION",
    "Durability",
    "connect",
    "create_schema",
    "read_meta",
    "translate",
]

FORMAT: Final = "fedchain-ledger"
VERSION: Final = "1"
Durability = Literal["normal", "full"]

_APPEND_ONLY = ("meta", "cas", "certs", "entries")
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE cas (org TEXT PRIMARY KEY, sha256 TEXT NOT NULL, der BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE certs (sha256 TEXT PRIMARY KEY, der BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE entries (
    seq INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    body BLOB NOT NULL,
    sig BLOB NOT NULL,
    kind TEXT NOT NULL,
    org TEXT NOT NULL,
    run TEXT,
    round INTEGER,
    task TEXT
);
CREATE INDEX entries_run ON entries (run, round);
CREATE INDEX entries_kind ON entries (kind);
CREATE INDEX entries_org ON entries (org);
CREATE INDEX entries_task ON entries (task);
"""
_TRIGGER = """
CREATE TRIGGER {table}_no_{op} BEFORE {OP} ON {table}
BEGIN SELECT RAISE(ABORT, 'the fedchain ledger is append-only'); END;
"""

# Primary result codes (https://sqlite.org/rescode.html).
_BUSY, _LOCKED, _READONLY, _CORRUPT, _CANTOPEN, _NOTADB = 5, 6, 8, 11, 14, 26


def create_schema(conn: sqlite3.Connection) -> None:
    """Create every table, index and append-only trigger (inside the caller's transaction)."""
    statements = [s for s in _SCHEMA.split(";") if s.strip()]
    for table in _APPEND_ONLY:
        for op in ("update", "delete"):
            statements.append(_TRIGGER.format(table=table, op=op, OP=op.upper()))
    for statement in statements:
        conn.execute(statement)
    conn.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?)", [("format", FORMAT), ("version", VERSION)]
    )


def connect(
    path: Path,
    *,
    readonly: bool,
    durability: Durability = "normal",
    busy_timeout: float = 5.0,
    create: bool = False,
) -> sqlite3.Connection:
    """Open ``path`` in autocommit mode (transactions are explicit ``BEGIN``s).

    Without ``create`` the file must exist: SQLite would otherwise create an empty one, and a
    typo in a path must not make a new ledger appear. ``durability``: see ``docs/ledger.md``;
    in WAL mode ``normal`` never loses integrity, only possibly the last commits on power loss.
    """
    if not create and not path.is_file():
        raise LedgerNotFound(f"no ledger file at {path}")
    uri = f"file:{quote(str(path.absolute()))}?mode={'ro' if readonly else 'rwc'}"
    with translate(path):
        conn = sqlite3.connect(
            uri, uri=True, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            if create:
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={'FULL' if durability == 'full' else 'NORMAL'}")
        except BaseException:
            conn.close()
            raise
    return conn


def read_meta(conn: sqlite3.Connection, path: Path) -> dict[str, str]:
    """The meta table; :class:`LedgerNotFound` when the file is not a fedchain ledger."""
    try:
        rows = conn.execute("SELECT key, value FROM meta").fetchall()
    except sqlite3.Error as exc:
        raise LedgerNotFound(f"{path} is not a fedchain ledger ({exc})") from exc
    meta = {str(k): str(v) for k, v in rows}
    if meta.get("format") != FORMAT:
        raise LedgerNotFound(f"{path} is not a fedchain ledger (no format marker)")
    if meta.get("version") != VERSION:
        raise LedgerError(f"{path} is ledger format version {meta.get('version')}; need {VERSION}")
    return meta


@contextlib.contextmanager
def translate(path: Path, *, seq: int | None = None) -> Iterator[None]:
    """Turn ``sqlite3`` errors raised inside the block into fedchain ledger errors.

    ``seq`` is the entry being read, if known: damage found while reading entries becomes
    ``LedgerCorrupted(seq)`` so audit can name where the file broke.
    """
    try:
        yield
    except sqlite3.Error as exc:
        raise _translated(exc, path, seq) from exc


def _translated(exc: sqlite3.Error, path: Path, seq: int | None) -> LedgerError:
    code = getattr(exc, "sqlite_errorcode", -1) & 0xFF
    text = f"{path}: {exc}"
    if code in (_BUSY, _LOCKED):
        return LedgerUnavailable(f"{text} (another process holds the ledger; retry)")
    if code in (_CORRUPT, _NOTADB):
        if seq is not None:
            return LedgerCorrupted(seq, f"the database file is damaged ({exc})")
        return LedgerNotFound(f"{text} (not a readable fedchain ledger)")
    if code == _CANTOPEN:
        reason = "not readable" if os.path.exists(path) else "missing"
        return LedgerNotFound(f"{text} ({reason})")
    if code == _READONLY:
        return LedgerError(f"{text} (the file or its folder is read-only)")
    return LedgerError(text)
