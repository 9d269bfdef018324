"""``fedchain audit``: verify an embedded ledger file from its first entry to its last.

For every entry, in order: its position (``seq`` contiguous from 0, and the body names the same
``seq``: a deleted or reordered entry is caught where it happens), the ``prev`` link, the entry
hash, the canonical form of the body, the indexed columns against the body, the signer's
certificate (stored by SHA-256, chained to the org's CA recorded in entry 0, valid at the
entry's time, of the same org as the record), the low-S signature over the body, and a replay
of every write rule with :class:`~fedchain.ledger.rules.LedgerState` — so a record the rules
refuse (e.g. a task written by a non-aggregator) is caught even when it is correctly chained
and signed. The first bad entry is raised as :class:`~fedchain.errors.LedgerCorrupted`.

Without ``trusted`` the audit proves the file is internally consistent with the consortium it
names; with ``trusted`` (the consortium from your own PKI folder) it also proves it is *that*
consortium — an attacker who rewrote the whole file with CAs of their own is caught only so.

Speed: the order-free checks (hash, body, signature: ~170 µs an entry) run in worker
processes for large ledgers (:mod:`fedchain.ledger.audit_check`) while this process does the
sequential ones; each certificate chain is verified once
(:class:`~fedchain.ledger.chain.SignerCache`).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from fedchain.errors import CertificateError, LedgerCorrupted, RuleViolation
from fedchain.hashing import sha256_hex
from fedchain.ledger import sqlite_store as store
from fedchain.ledger.audit_check import Batch, Checked, Row, checked_stream
from fedchain.ledger.audit_report import AuditReport, ModelCheck, RoundTable
from fedchain.ledger.canonical import loads
from fedchain.ledger.chain import GENESIS_PREV, RECORD_AT, SignerCache
from fedchain.ledger.embedded_read import Reader
from fedchain.ledger.records import Record
from fedchain.ledger.rules import LedgerState
from fedchain.pki import Consortium

__all__ = ["MODEL_SUFFIX", "audit", "check_models"]

#: Global models are stored as ``<models_dir>/<sha256><MODEL_SUFFIX>``.
MODEL_SUFFIX: Final = ".bin"
_DECODER = json.JSONDecoder()
_ROWS = "SELECT seq, hash, body, sig, kind, org, run, round, task FROM entries ORDER BY seq"


def audit(
    path: Path | str,
    *,
    models_dir: Path | str | None = None,
    trusted: Consortium | None = None,
    workers: int = 2,
) -> AuditReport:
    """Verify the ledger at ``path``; raise ``LedgerCorrupted`` naming the first bad entry.

    ``LedgerNotFound`` when there is no ledger there. Model files (``<sha256>.bin`` in
    ``models_dir``) are checked against every ``run`` and ``close`` model hash; missing and
    altered files are listed in the report (``report.ok`` is False when one is altered).
    """
    path = Path(path)
    conn = store.connect(path, readonly=True)
    try:
        store.read_meta(conn, path)
        consortium = Reader.stored_consortium(conn, path)
        if trusted is not None:
            _check_trusted(consortium, trusted)
        with store.translate(path, seq=0):
            rows = conn.execute("SELECT sha256, der FROM certs").fetchall()
            total = int(conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0])
        certs = {str(s): d for s, d in rows if isinstance(d, bytes)}  # else: "not stored"
        verifier = _ChainVerifier(SignerCache(consortium, certs))
        verifier.run(checked_stream(_rows(conn, path), certs, workers=workers, total=total))
    finally:
        conn.close()
    report = AuditReport(
        path=str(path), consortium=consortium.name, aggregator=consortium.aggregator,
        orgs=consortium.fingerprints(), entries=verifier.count, head_hash=verifier.head,
        signers=verifier.signers, rounds=verifier.table.rows(),
    )  # fmt: skip
    if models_dir is not None:
        report.models = check_models(Path(models_dir), verifier.table.model_hashes)
    return report


def _check_trusted(found: Consortium, trusted: Consortium) -> None:
    if (found.name, found.aggregator) != (trusted.name, trusted.aggregator):
        raise LedgerCorrupted(
            0,
            f"the ledger's consortium {found.name!r} (aggregator {found.aggregator}) "
            f"is not the trusted {trusted.name!r}",
        )
    if found.fingerprints() != trusted.fingerprints():
        raise LedgerCorrupted(0, "the ledger's CA certificates differ from the trusted consortium")


def _rows(conn: sqlite3.Connection, path: Path) -> Iterator[tuple[Any, ...]]:
    """Stored rows in seq order; damage SQLite notices becomes LedgerCorrupted(next seq)."""
    expected = 0
    with store.translate(path, seq=expected):
        cursor = conn.execute(_ROWS)
    while True:
        with store.translate(path, seq=expected):
            rows = cursor.fetchmany(1024)
        if not rows:
            return
        for row in rows:
            yield row
            expected += 1


class _ChainVerifier:
    """The sequential half: positions, chain links, signer certificates, write-rule replay."""

    def __init__(self, signers: SignerCache) -> None:
        self.cache = signers
        self.state = LedgerState()
        self.table = RoundTable()
        self.count = 0
        self.head = GENESIS_PREV
        self.signers: dict[str, str] = {}

    def run(self, batches: Iterator[Batch]) -> None:
        for rows, good, failure in batches:
            for row, checked in zip(rows, good, strict=False):
                self._accept(row, checked)
            if failure is not None:
                self._position(failure[0])  # a bad row after a gap: the gap comes first
                raise LedgerCorrupted(*failure)
        if self.count == 0:
            raise LedgerCorrupted(0, "the ledger has no entries")

    def _position(self, seq: int) -> None:
        if seq != self.count:
            what = "missing" if seq > self.count else "out of order"
            raise LedgerCorrupted(self.count, f"entry {self.count} is {what} (found seq {seq})")

    def _accept(self, row: Row, checked: Checked) -> None:
        seq, prev, ts, signer, cert_sha, end, exact = checked
        self._position(seq)
        if prev != self.head:
            raise LedgerCorrupted(seq, "prev does not match the previous entry's hash")
        try:
            org, _ = self.cache.check(cert_sha, ts)
        except CertificateError as exc:
            raise LedgerCorrupted(seq, f"signer certificate rejected: {exc}") from exc
        if signer != org:
            raise LedgerCorrupted(seq, f"signer claims {signer} but its certificate is {org}'s")
        canonical = row[2][RECORD_AT:end]  # validated by check_rows; parsed again here
        data = _DECODER.decode(canonical.decode()) if exact else loads(canonical)
        record = Record(data, canonical, sha256_hex(canonical))
        if record.org != org:
            raise LedgerCorrupted(seq, f"a record of {record.org} signed by {org}")
        try:
            self.state.admit(record, org)
        except RuleViolation as exc:
            raise LedgerCorrupted(seq, f"write rule {exc.rule} refuses this record: "
                                       f"{exc.detail}") from exc  # fmt: skip
        self.signers[cert_sha] = org
        self.table.add(record)
        self.count, self.head = seq + 1, row[1].hex()


def check_models(directory: Path, hashes: list[str]) -> ModelCheck:
    """Check ``<directory>/<sha256>.bin`` for each hash: verified, missing or mismatched."""
    result = ModelCheck(directory=str(directory))
    for sha in hashes:
        target = directory / f"{sha}{MODEL_SUFFIX}"
        try:
            with target.open("rb") as fh:
                actual = hashlib.file_digest(fh, "sha256").hexdigest()
        except FileNotFoundError:
            result.missing.append(sha)
            continue
        except OSError:
            result.mismatched.append(sha)
            continue
        (result.verified if actual == sha else result.mismatched).append(sha)
    return result
