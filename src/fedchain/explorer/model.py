"""What the explorer shows, built from ledger entries in order (no I/O).

:class:`LedgerView` is fed every :class:`~fedchain.ledger.base.Entry` once, in ledger order, and
keeps per run the rounds (tasks, announced updates, selections, the close record), so a page is
rendered from memory and a new entry costs one :meth:`LedgerView.add`, not a re-read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fedchain.ledger.base import Entry
from fedchain.runtime.rounds import RUN_END

__all__ = ["Announcement", "Contribution", "LedgerView", "ModelStep", "Round", "Run"]

#: Close-record metrics under this prefix are fedchain's markers (e.g. the run's end), not a
#: model's metrics: they are shown as such, never charted.
MARKER_PREFIX = "fedchain:"


@dataclass
class Announcement:
    """One organization's ``update`` record for one task: the metadata selection looks at."""

    org: str
    task: str
    task_type: str
    ok: bool
    num_examples: int
    metrics: dict[str, float]
    error: str | None
    seq: int
    selected: bool | None = None  # None: no selection was recorded for the task


@dataclass
class Round:
    """One round of one run, as its records tell it."""

    number: int
    tasks: list[tuple[str, str]] = field(default_factory=list)  # (task id, message type)
    participants: list[str] = field(default_factory=list)
    announcements: list[Announcement] = field(default_factory=list)
    secure: bool = False  # keys were published: secure aggregation, weights are masked
    closed: bool = False
    aggregated: list[str] = field(default_factory=list)
    dropouts: list[dict[str, str]] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)
    model_sha256: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    end: float | None = None  # the run's end marker: 1 the ServerApp returned, 0 it raised
    first_seq: int = 0
    close_seq: int | None = None
    close_ts: int | None = None

    def examples(self) -> dict[str, int]:
        """``num_examples`` per organization: its training update's, else its first one's."""
        out: dict[str, int] = {}
        for a in self.announcements:
            if a.ok and (a.task_type.startswith("train") or a.org not in out):
                out[a.org] = a.num_examples
        return out

    def selected(self) -> list[str]:
        return sorted({a.org for a in self.announcements if a.selected})


@dataclass
class Run:
    """A ``run`` record and every round recorded under it."""

    id: str
    app_sha256: str
    strategy_sha256: str
    model_sha256: str
    config: dict[str, float]
    seq: int
    ts: int
    rounds: dict[int, Round] = field(default_factory=dict)
    last_ts: int = 0

    @property
    def rounds_done(self) -> int:
        return sum(1 for r in self.rounds.values() if r.closed)

    @property
    def planned(self) -> int | None:
        value = self.config.get("rounds", self.config.get("num-server-rounds"))
        return None if value is None else int(value)

    @property
    def status(self) -> str:
        """``finished`` or ``failed`` by the run's end marker; without one (a ledger from
        before it, or a run in progress), ``finished`` once the planned rounds closed."""
        ends = [r.end for r in self.rounds.values() if r.end is not None]
        if ends:
            return "finished" if ends[-1] == 1 else "failed"
        planned = self.planned
        if planned is not None and self.rounds_done >= planned:
            return "finished"
        return "in progress"

    @property
    def organizations(self) -> list[str]:
        return sorted({org for r in self.rounds.values() for org in r.participants})

    def metric_names(self) -> list[str]:
        names: dict[str, None] = {}
        for r in self.rounds.values():
            names.update(dict.fromkeys(r.metrics))
        return list(names)

    def series(self, metric: str) -> list[tuple[int, float]]:
        """(round, value) of one close-record metric, in round order."""
        return [(n, r.metrics[metric]) for n, r in sorted(self.rounds.items())
                if metric in r.metrics]  # fmt: skip

    def contributions(self) -> list[Contribution]:
        """Per organization over the run: rounds joined, selected, aggregated, refused..."""
        table: dict[str, Contribution] = {}

        def row(org: str) -> Contribution:
            return table.setdefault(org, Contribution(org))

        for r in self.rounds.values():
            for org in r.participants:
                row(org).joined += 1
            for org in r.selected():
                row(org).selected += 1
            for org in r.aggregated:
                row(org).aggregated += 1
            for item in r.rejected:
                row(item["org"]).refused += 1
            for item in r.dropouts:
                row(item["org"]).dropped += 1
            for org in sorted({a.org for a in r.announcements if not a.ok}):
                row(org).errors += 1
            for org, n in r.examples().items():
                if r.secure:
                    row(org).masked_rounds += 1
                else:
                    row(org).examples += n
        return [table[o] for o in sorted(table)]

    def lineage(self) -> list[ModelStep]:
        """The chain of global models: the initial one, then each round's new model."""
        steps = [ModelStep(0, self.model_sha256, self.seq, self.ts, "initial model")]
        for n, r in sorted(self.rounds.items()):
            if r.closed and r.model_sha256 is not None and r.close_seq is not None:
                changed = r.model_sha256 != steps[-1].sha256
                what = "aggregated" if changed else "unchanged (previous model kept)"
                steps.append(ModelStep(n, r.model_sha256, r.close_seq, r.close_ts or 0, what))
        return steps


@dataclass
class Contribution:
    """One organization's part in a run."""

    org: str
    joined: int = 0
    selected: int = 0
    aggregated: int = 0
    refused: int = 0
    dropped: int = 0
    errors: int = 0
    examples: int = 0
    masked_rounds: int = 0


@dataclass(frozen=True)
class ModelStep:
    """A global model in a run's lineage (round 0: the initial model)."""

    round: int
    sha256: str
    seq: int
    ts: int
    what: str


class LedgerView:
    """Every run on the ledger, kept up to date one entry at a time."""

    def __init__(self) -> None:
        self.consortium: dict[str, Any] | None = None
        self.runs: dict[str, Run] = {}
        self.count = 0
        self.head_seq = -1
        self.head_hash = ""
        self.last_ts = 0
        self._task_types: dict[tuple[str, str], str] = {}

    def add_all(self, entries: list[Entry]) -> None:
        for entry in entries:
            self.add(entry)

    def add(self, entry: Entry) -> None:
        """Account for one entry (entries arrive once each, in ledger order)."""
        if entry.seq <= self.head_seq:
            return
        self.count += 1
        self.head_seq, self.head_hash, self.last_ts = entry.seq, entry.hash, entry.ts
        record = entry.record
        kind = record.kind
        if kind == "consortium":
            self.consortium = dict(record.data)
            return
        if kind == "run":
            self.runs[str(record.run)] = Run(
                str(record.run), record["app_sha256"], record["strategy_sha256"],
                record["model_sha256"], dict(record["config"]), entry.seq, entry.ts,
            )  # fmt: skip
            self.runs[str(record.run)].last_ts = entry.ts
            return
        run = self.runs.get(str(record.run))
        if run is None or record.round is None:
            return  # the write rules make this impossible on a sound ledger
        run.last_ts = entry.ts
        rnd = run.rounds.get(record.round)
        if rnd is None:
            rnd = run.rounds[record.round] = Round(record.round, first_seq=entry.seq)
        self._apply(rnd, entry)

    def _apply(self, rnd: Round, entry: Entry) -> None:
        record = entry.record
        data = record.data
        key = (str(record.run), str(record.task))
        if record.kind == "task":
            self._task_types[key] = str(data["type"])
            rnd.tasks.append((str(record.task), str(data["type"])))
            fresh = {str(r["org"]) for r in data["recipients"]} - set(rnd.participants)
            if fresh:
                rnd.participants = sorted([*rnd.participants, *fresh])
        elif record.kind == "update":
            rnd.announcements.append(Announcement(
                record.org, str(record.task), self._task_types.get(key, ""),
                data["status"] == "ok", int(data["num_examples"]), dict(data["metrics"]),
                data["error"], entry.seq,
            ))  # fmt: skip
        elif record.kind == "keys":
            rnd.secure = True
        elif record.kind == "selection":
            chosen = set(data["selected"])
            for a in rnd.announcements:
                if a.task == record.task:
                    a.selected = a.org in chosen
        elif record.kind == "close":
            rnd.closed, rnd.close_seq, rnd.close_ts = True, entry.seq, entry.ts
            rnd.aggregated = [str(a["org"]) for a in data["aggregated"]]
            rnd.dropouts = [dict(d) for d in data["dropouts"]]
            rnd.rejected = [dict(r) for r in data["rejected"]]
            rnd.model_sha256 = data["model_sha256"]
            metrics = dict(data["metrics"])
            rnd.end = metrics.get(RUN_END)
            rnd.metrics = {k: v for k, v in metrics.items() if not k.startswith(MARKER_PREFIX)}
