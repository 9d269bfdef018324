"""Rollback detection: a signed note of the last ledger head an organization saw.

The embedded ledger is tamper-evident, not tamper-proof: whoever holds the file can cut its
last entries cleanly, or cut them and write different ones (the aggregator re-signing its own
last ``close`` with an organization quietly dropped). Every entry left still verifies, so
neither shows in an audit of the file alone. What shows it is a head seen before: a copy whose
entry at that ``seq`` is missing went backwards; one whose entry there has another hash forked.

Each organization's runtime keeps a :class:`Checkpoint` file (its own signature over the ledger's
entry-0 hash, a ``seq`` and that entry's hash), advances it as it reads, and refuses a ledger
that does not extend it (:class:`GuardedLedger`). ``fedchain audit --expect-head SEQ:HASH`` or
``--checkpoint FILE`` checks a copy the same way. A Fabric channel prevents rollback by
construction (blocks are hash-linked and replicated on every organization's peer, and a peer
never accepts a shorter or different chain), so the guard is for the embedded ledger.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from fedchain.errors import ConfigError, FedchainError, LedgerCorrupted, LedgerError
from fedchain.ledger.base import Entry, Ledger, Query
from fedchain.ledger.records import Record
from fedchain.pki import Consortium, Identity
from fedchain.pki.signing import verify_signature

__all__ = ["Checkpoint", "GuardedLedger", "Head", "LedgerRolledBack", "check_extends"]

_KIND = "fedchain-ledger-checkpoint"


class LedgerRolledBack(LedgerCorrupted):
    """The ledger does not extend a head seen before: it went backwards or forked."""


@dataclass(frozen=True)
class Head:
    """One entry's place and hash: what a later copy of the ledger must still hold."""

    seq: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> Head:
        """``"SEQ:HASH"`` (as ``fedchain audit`` prints it); ConfigError if malformed."""
        seq, sep, digest = text.strip().partition(":")
        try:
            head = cls(int(seq), digest.lower())
        except ValueError:
            head = cls(-1, "")
        if not sep or head.seq < 0 or len(digest) != 64 or not _is_hex(digest):
            raise ConfigError(f"a head is SEQ:HASH (a 64-hex-digit entry hash), not {text!r}")
        return head

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _entry_at(ledger: Ledger, seq: int) -> Entry | None:
    found = ledger.metadata_get(Query(after=seq - 1, limit=1))
    return found[0] if found and found[0].seq == seq else None


def check_extends(ledger: Ledger, head: Head) -> None:
    """Raise LedgerRolledBack unless ``ledger`` holds ``head`` (same seq, same hash)."""
    entry = _entry_at(ledger, head.seq)
    if entry is None:
        raise LedgerRolledBack(
            head.seq,
            f"the ledger went backwards: its last entry is {ledger.head()}, but entry "
            f"{head.seq} ({head.hash[:16]}…) was seen before",
        )
    if entry.hash != head.hash:
        raise LedgerRolledBack(
            head.seq,
            f"the ledger forked: entry {head.seq} is now {entry.hash[:16]}…, but "
            f"{head.hash[:16]}… was seen there before",
        )


@dataclass(frozen=True)
class Checkpoint:
    """A head seen by ``org`` on the ledger whose entry 0 hashes to ``ledger``, signed by it."""

    ledger: str
    org: str
    head: Head

    def _signed_bytes(self) -> bytes:
        body = {"kind": _KIND, "v": 1, "ledger": self.ledger, "org": self.org,
                "seq": self.head.seq, "hash": self.head.hash}  # fmt: skip
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def save(self, path: Path, identity: Identity) -> None:
        """Write the checkpoint atomically (a temporary file renamed over ``path``)."""
        doc = {
            "kind": _KIND, "v": 1, "ledger": self.ledger, "org": self.org,
            "seq": self.head.seq, "hash": self.head.hash,
            "cert": identity.cert_pem.decode(), "sig": identity.sign(self._signed_bytes()).hex(),
        }  # fmt: skip
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(doc, out, indent=1)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path, consortium: Consortium) -> Checkpoint:
        """Read and verify ``path``: the signer's certificate must chain to ``consortium``."""
        try:
            doc: Any = json.loads(path.read_text())
            cert = x509.load_pem_x509_certificate(str(doc["cert"]).encode())
            head = Head(int(doc["seq"]), str(doc["hash"]))
            found = cls(str(doc["ledger"]), str(doc["org"]), head)
            signature = bytes.fromhex(str(doc["sig"]))
            if doc.get("kind") != _KIND:
                raise ValueError(f"kind {doc.get('kind')!r}")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LedgerError(f"checkpoint {path} is unreadable: {exc}") from exc
        try:
            signer = consortium.org_of(cert)
            verify_signature(cert, found._signed_bytes(), signature)
        except FedchainError as exc:
            raise LedgerError(f"checkpoint {path} is not validly signed: {exc}") from exc
        if signer != found.org:
            raise LedgerError(f"checkpoint {path} names {found.org} but {signer} signed it")
        return found

    def check(self, ledger: Ledger) -> None:
        """Raise LedgerRolledBack unless ``ledger`` is the same ledger and extends the head."""
        genesis = _entry_at(ledger, 0)
        if genesis is None or genesis.hash != self.ledger:
            raise LedgerRolledBack(
                0, f"this is not the ledger the checkpoint was taken on (entry 0 "
                f"{(genesis.hash if genesis else '-')[:16]}…, checkpoint {self.ledger[:16]}…)",
            )  # fmt: skip
        check_extends(ledger, self.head)


class GuardedLedger:
    """``inner`` behind a checkpoint: every call first checks the ledger still extends the last
    head seen, and every entry read or written advances (and saves) it."""

    def __init__(self, inner: Ledger, path: Path, identity: Identity, consortium: Consortium):
        self._inner, self._path, self._identity = inner, path, identity
        genesis = _entry_at(inner, 0)
        if genesis is None:
            raise LedgerError("the ledger has no entry 0")
        self._mark = Checkpoint(genesis.hash, identity.org, Head(0, genesis.hash))
        if path.exists():
            saved = Checkpoint.load(path, consortium)
            if saved.org != identity.org:
                raise LedgerError(f"checkpoint {path} is {saved.org}'s, not {identity.org}'s")
            saved.check(inner)
            self._mark = saved
        last = inner.metadata_get(Query(after=inner.head() - 1, limit=1))
        self._advance(last)

    @property
    def head_seen(self) -> Head:
        """The last head this handle saw (what the checkpoint file holds)."""
        return self._mark.head

    def _check(self) -> None:
        check_extends(self._inner, self._mark.head)

    def _advance(self, entries: Sequence[Entry]) -> None:
        if entries and entries[-1].seq > self._mark.head.seq:
            head = Head(entries[-1].seq, entries[-1].hash)
            self._mark = Checkpoint(self._mark.ledger, self._mark.org, head)
            self._mark.save(self._path, self._identity)
        elif not self._path.exists():
            self._mark.save(self._path, self._identity)

    @property
    def org(self) -> str:
        return self._inner.org

    def metadata_publish(self, records: Record | Sequence[Record]) -> list[Entry]:
        self._check()
        written = self._inner.metadata_publish(records)
        self._advance(written)
        return written

    def metadata_get(self, query: Query | None = None) -> list[Entry]:
        self._check()
        found = self._inner.metadata_get(query)
        self._advance(found)
        return found

    def wait(self, after: int, timeout: float) -> list[Entry]:
        self._check()
        found = self._inner.wait(after, timeout)
        self._advance(found)
        return found

    def head(self) -> int:
        return self._inner.head()

    def close(self) -> None:
        self._inner.close()
