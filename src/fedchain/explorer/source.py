"""The explorer's one reading handle on a ledger, and the live integrity verdict.

:class:`LedgerSource` opens any backend read-only (the embedded file through a ``mode=ro``
SQLite connection in WAL mode, so its reads never block a writer; a Fabric channel as the
configured organization, whose handle is only ever asked to read), feeds a
:class:`~fedchain.explorer.model.LedgerView`, and follows new entries with ``Ledger.wait``.
An entry the reader refuses (its hash, position or signature do not verify) stops the
following: the view keeps the entries before it and :attr:`LedgerSource.broken` names it.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field
from pathlib import Path

from fedchain.config import Settings
from fedchain.errors import ConfigError, LedgerCorrupted
from fedchain.explorer.model import LedgerView
from fedchain.ledger.audit import MODEL_SUFFIX, audit, check_models
from fedchain.ledger.audit_report import ModelCheck
from fedchain.ledger.base import Entry, Ledger, Query
from fedchain.ledger.embedded import EmbeddedLedger
from fedchain.ledger.factory import open_for_reading
from fedchain.ledger.replay import replay_table
from fedchain.pki import Consortium

__all__ = ["MODEL_SUFFIX", "LedgerSource", "Verdict"]


@dataclass
class Verdict:
    """The integrity check of the ledger up to ``head_seq`` (``ok`` or the first bad entry)."""

    ok: bool
    checked: str  # what was verified, for people
    entries: int
    head_seq: int
    head_hash: str
    bad_seq: int | None = None
    detail: str = ""
    models: ModelCheck | None = None
    altered: list[str] = field(default_factory=list)


class LedgerSource:
    """A read-only ledger handle, the view built from it, and the live verdict."""

    def __init__(
        self, ledger: Ledger, *, path: Path | None, label: str,
        models: Path | None = None, trusted: Consortium | None = None,
    ) -> None:  # fmt: skip
        self.ledger, self.path, self.label = ledger, path, label
        self.models, self.trusted = models, trusted
        self.view = LedgerView()
        self.broken: LedgerCorrupted | None = None
        self._entries: list[Entry] = []
        self._lock = threading.Lock()
        self._verdict: tuple[int, Verdict] | None = None  # (view head it was computed at, it)
        self._checking = threading.Lock()  # one verdict at a time; callers meanwhile wait for it

    @classmethod
    def open(
        cls, *, ledger: Path | None, settings: Settings | None, pki: Path | None,
        models: Path | None, trusted: Consortium | None,
    ) -> LedgerSource:  # fmt: skip
        """The embedded file ``ledger``, else the ledger ``settings`` name (read-only)."""
        if ledger is not None:
            return cls(EmbeddedLedger.open(ledger), path=ledger, label=str(ledger),
                       models=models, trusted=trusted)  # fmt: skip
        if settings is None:
            raise ConfigError("give --ledger FILE or --config fedchain.toml")
        path = settings.ledger.path if settings.ledger.backend == "embedded" else None
        return cls(open_for_reading(_without_resume_file(settings), pki), path=path,
                   label=settings.ledger.describe(), models=models, trusted=trusted)  # fmt: skip

    @property
    def backend(self) -> str:
        return "embedded" if self.path is not None else "fabric"

    def load(self) -> None:
        """Read every entry there is now."""
        self.take(self._read(self.view.head_seq))

    def wait_new(self, timeout: float) -> list[Entry]:
        """Block up to ``timeout`` s for entries after the view's head (``Ledger.wait``).

        Thread-safe and leaves the view alone: the caller hands them to :meth:`take` on the
        thread that renders pages, so a page never sees the view half-updated.
        """
        if self.broken is not None:
            return []
        after = self.view.head_seq
        try:
            return self.ledger.wait(after, timeout)
        except LedgerCorrupted as exc:
            return self._prefix(after, exc)

    def take(self, found: list[Entry]) -> list[Entry]:
        """Add the entries not yet in the view; return those."""
        with self._lock:
            fresh = [e for e in found if e.seq > self.view.head_seq]
            self.view.add_all(fresh)
            self._entries.extend(fresh)
        return fresh

    def entries_after(self, after: int, limit: int = 1000) -> list[Entry]:
        """Entries already in the view with ``seq > after`` (what a live page missed)."""
        with self._lock:
            start = bisect.bisect_right(self._entries, after, key=lambda e: e.seq)
            return self._entries[start : start + limit]

    def _read(self, after: int) -> list[Entry]:
        try:
            return self.ledger.metadata_get(Query(after=after))
        except LedgerCorrupted as exc:
            return self._prefix(after, exc)

    def _prefix(self, after: int, exc: LedgerCorrupted) -> list[Entry]:
        """The entries before the one the reader refused; remember the refusal."""
        self.broken = exc
        if exc.seq <= after + 1:
            return []
        try:
            return self.ledger.metadata_get(Query(after=after, limit=exc.seq - after - 1))
        except LedgerCorrupted:
            return []

    def last_verdict(self) -> Verdict | None:
        """The latest verdict computed (maybe at an older head), without computing one."""
        return None if self._verdict is None else self._verdict[1]

    def verdict(self) -> Verdict:
        """The integrity verdict at the current head, computed once per head."""
        with self._checking:
            with self._lock:
                head, entries = self.view.head_seq, list(self._entries)
            cached = self._verdict
            if cached is not None and cached[0] == head:
                return cached[1]
            verdict = self._check(entries)
            self._verdict = (head, verdict)
            return verdict

    def _check(self, entries: list[Entry]) -> Verdict:
        if self.path is not None:
            return self._audit_file(self.path)
        head_seq, head_hash = (entries[-1].seq, entries[-1].hash) if entries else (-1, "")
        checked = "write rules replayed over every record (Fabric protects blocks and endorsements)"
        try:
            table = replay_table(entries)
        except LedgerCorrupted as exc:
            return Verdict(False, checked, len(entries), head_seq, head_hash, bad_seq=exc.seq,
                           detail=exc.detail)  # fmt: skip
        models = check_models(self.models, table.model_hashes) if self.models else None
        return _with_models(Verdict(True, checked, len(entries), head_seq, head_hash), models)

    def _audit_file(self, path: Path) -> Verdict:
        checked = "hash chain, signatures, certificates and write rules of every entry"
        if self.trusted is not None:
            checked += ", against the consortium of --pki"
        try:
            report = audit(path, models_dir=self.models, trusted=self.trusted)
        except LedgerCorrupted as exc:
            return Verdict(False, checked, self.view.count, self.view.head_seq,
                           self.view.head_hash, bad_seq=exc.seq, detail=exc.detail)  # fmt: skip
        head_seq = report.entries - 1
        return _with_models(
            Verdict(True, checked, report.entries, head_seq, report.head_hash), report.models
        )

    def close(self) -> None:
        self.ledger.close()


def _without_resume_file(settings: Settings) -> Settings:
    """The settings without a Fabric resume file: that file is the organization's runtime
    state (fedchain-client's), which the explorer must neither write nor race."""
    fabric = settings.ledger.fabric
    if fabric is None or fabric.resume_file is None:
        return settings
    ledger = settings.ledger.model_copy(update={"fabric": fabric.model_copy(
        update={"resume_file": None})})  # fmt: skip
    return settings.model_copy(update={"ledger": ledger})


def _with_models(verdict: Verdict, models: ModelCheck | None) -> Verdict:
    verdict.models = models
    if models is not None and models.mismatched:
        verdict.ok = False
        verdict.altered = [f"{sha}{MODEL_SUFFIX}" for sha in models.mismatched]
        verdict.detail = f"{len(models.mismatched)} model file(s) differ from their ledger hash"
    return verdict
