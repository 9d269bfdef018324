"""What ``fedchain audit`` reports: the per-round table and the model-file check.

:class:`RoundTable` is fed the records of a verified ledger in order (no I/O) and summarises
each round of each run: who was asked (recipients of the round's tasks), what each organization
announced (``num_examples`` of its last ``ok`` update in the round), what the close record says
(aggregated, dropouts, rejected, new global model, metrics). A round with secure-aggregation
``keys`` records is ``masked``: its sample counts travel masked inside the updates, so the
ledger's are 0 and say nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from fedchain.ledger.records import Record

__all__ = ["AuditReport", "ModelCheck", "RoundSummary", "RoundTable"]


@dataclass
class RoundSummary:
    """One round of one run, as the ledger records it."""

    run: str
    round: int
    closed: bool = False
    participants: list[str] = field(default_factory=list)
    num_examples: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    aggregated: list[str] = field(default_factory=list)
    dropouts: list[str] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)
    model_sha256: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    masked: bool = False  # secure aggregation: the per-organization counts are masked


@dataclass
class ModelCheck:
    """Model files under ``--models`` named ``<sha256>.bin``, checked against the ledger."""

    directory: str
    verified: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)


@dataclass
class AuditReport:
    """The result of a successful chain audit (a broken chain raises ``LedgerCorrupted``)."""

    path: str
    consortium: str
    aggregator: str
    orgs: dict[str, str]
    entries: int
    head_hash: str
    signers: dict[str, str]
    rounds: list[RoundSummary]
    models: ModelCheck | None = None

    @property
    def ok(self) -> bool:
        """The chain verified (else we would have raised) and no model file is altered."""
        return self.models is None or not self.models.mismatched

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``--json`` output)."""
        out = asdict(self)
        out["ok"] = self.ok
        return out


class RoundTable:
    """Accumulates :class:`RoundSummary` rows from records in ledger order."""

    def __init__(self) -> None:
        self._rounds: dict[tuple[str, int], RoundSummary] = {}
        self._trains: set[tuple[str, str]] = set()  # (run, task) of training tasks
        self.model_hashes: list[str] = []

    def _row(self, run: str, rnd: int) -> RoundSummary:
        key = (run, rnd)
        if key not in self._rounds:
            self._rounds[key] = RoundSummary(run=run, round=rnd)
        return self._rounds[key]

    def add(self, record: Record) -> None:
        """Account for one admitted record."""
        kind = record.kind
        if kind == "run" and record["model_sha256"] not in self.model_hashes:
            self.model_hashes.append(str(record["model_sha256"]))
        elif kind == "task":
            row = self._row(str(record.run), int(record["round"]))
            if str(record["type"]).startswith("train"):
                self._trains.add((str(record.run), str(record.task)))
            for recipient in record["recipients"]:
                if recipient["org"] not in row.participants:
                    row.participants.append(str(recipient["org"]))
        elif kind == "update":
            row = self._row(str(record.run), int(record["round"]))
            if record["status"] == "ok":
                # The training update's sample count is the one that weighs in aggregation.
                examples = int(record["num_examples"])
                if (str(record.run), str(record.task)) in self._trains:
                    row.num_examples[record.org] = examples
                else:
                    row.num_examples.setdefault(record.org, examples)
            elif record.org not in row.errors:
                row.errors.append(record.org)
        elif kind == "close":
            self._close(record)
        elif kind == "keys":
            self._row(str(record.run), int(record["round"])).masked = True

    def _close(self, record: Record) -> None:
        row = self._row(str(record.run), int(record["round"]))
        row.closed = True
        row.aggregated = [str(a["org"]) for a in record["aggregated"]]
        row.dropouts = [str(d["org"]) for d in record["dropouts"]]
        row.rejected = [
            {"org": str(r["org"]), "reason": str(r["reason"])} for r in record["rejected"]
        ]
        row.model_sha256 = record["model_sha256"]
        row.metrics = dict(record["metrics"])
        if row.model_sha256 is not None and row.model_sha256 not in self.model_hashes:
            self.model_hashes.append(row.model_sha256)

    def rows(self) -> list[RoundSummary]:
        """Rows in the order their rounds first appeared on the ledger."""
        for row in self._rounds.values():
            row.participants.sort()
        return list(self._rounds.values())
