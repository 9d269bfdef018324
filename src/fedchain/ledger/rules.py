"""The ledger's write rules as a pure state machine, shared by every Python backend and audit.

``LedgerState.admit(record, signer_org)`` checks one record against everything written before
and, if it is allowed, applies it. Each rule has a stable identifier (``docs/ledger.md``) that
the chaincode raises too, so the vector files can say which rule refused a write. A batch is
admitted atomically: :meth:`LedgerState.admit_all` undoes what it applied when a later record
of the batch is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from fedchain.errors import RuleViolation
from fedchain.ledger.records import Record

__all__ = ["LedgerState", "RunState", "TaskState"]

Undo = Callable[[], None]
_AGGREGATOR_KINDS = frozenset({"run", "task", "selection", "close"})


@dataclass(eq=False)  # identity, not value: undo removes exactly the task it added
class TaskState:
    """What the ledger knows about one task: recipients, announced updates, selection, keys."""

    round: int
    recipients: frozenset[str]
    updates: dict[str, Record] = field(default_factory=dict)
    keys: set[str] = field(default_factory=set)
    selected: frozenset[str] | None = None


@dataclass
class RunState:
    """Per-run progress: tasks by id, the highest task round and the closed rounds."""

    tasks: dict[str, TaskState] = field(default_factory=dict)
    max_task_round: int = -1
    last_closed: int = -1
    closed: set[int] = field(default_factory=set)
    by_round: dict[int, list[TaskState]] = field(default_factory=dict)

    def round_tasks(self, rnd: int) -> list[TaskState]:
        """The round's tasks, from an index (a scan of every task made replay quadratic)."""
        return list(self.by_round.get(rnd, ()))


@dataclass
class LedgerState:
    """Everything the write rules need, rebuilt by replaying records in ledger order."""

    orgs: frozenset[str] = frozenset()
    aggregator: str | None = None
    runs: dict[str, RunState] = field(default_factory=dict)

    def admit_all(self, records: Sequence[Record], signer_org: str) -> None:
        """Admit every record or none of them (raises the first :class:`RuleViolation`)."""
        undo: list[Undo] = []
        try:
            for record in records:
                undo.append(self.admit(record, signer_org))
        except RuleViolation:
            for step in reversed(undo):
                step()
            raise

    def admit(self, record: Record, signer_org: str) -> Undo:
        """Check ``record`` written by ``signer_org``; apply it; return how to undo it."""
        self._check_identity(record, signer_org)
        handler = getattr(self, f"_admit_{record.kind}")
        undo: Undo = handler(record)
        return undo

    def _check_identity(self, record: Record, signer_org: str) -> None:
        if record.kind == "consortium":
            if record.org != signer_org:  # as the chaincode: nobody writes it in another's name
                raise RuleViolation(
                    "identity.mismatch", f"{signer_org} cannot write a record as {record.org}"
                )
            return
        if self.aggregator is None:
            raise RuleViolation("consortium.first", "the first record must be the consortium")
        if record.org != signer_org:
            raise RuleViolation(
                "identity.mismatch", f"{signer_org} cannot write a record as {record.org}"
            )
        if record.org not in self.orgs:
            raise RuleViolation("org.unknown", f"{record.org} is not in the consortium")
        if record.kind in _AGGREGATOR_KINDS and record.org != self.aggregator:
            raise RuleViolation(
                "role.aggregator_only",
                f"only the aggregator ({self.aggregator}) writes {record.kind}",
            )

    def _run(self, record: Record) -> RunState:
        run = self.runs.get(str(record.run))
        if run is None:
            raise RuleViolation("run.unknown", f"run {record.run} has not been started")
        return run

    def _open_task(self, record: Record) -> tuple[RunState, TaskState]:
        run = self._run(record)
        task = run.tasks.get(str(record.task))
        if task is None:
            raise RuleViolation("task.unknown", f"task {record.task} is not on the ledger")
        if task.round != record.round:
            raise RuleViolation(
                "task.round_mismatch", f"task {record.task} is in round {task.round}"
            )
        if task.round in run.closed:
            raise RuleViolation("round.closed", f"round {task.round} of {record.run} is closed")
        return run, task

    def _admit_consortium(self, record: Record) -> Undo:
        if self.aggregator is not None:
            raise RuleViolation("consortium.exists", "the consortium record is already written")
        if record.org != record["aggregator"]:
            raise RuleViolation("consortium.signer", "the aggregator writes the consortium record")
        self.orgs = frozenset(o["id"] for o in record["orgs"])
        self.aggregator = str(record["aggregator"])

        def undo() -> None:
            self.orgs, self.aggregator = frozenset(), None

        return undo

    def _admit_run(self, record: Record) -> Undo:
        run_id = str(record.run)
        if run_id in self.runs:
            raise RuleViolation("run.duplicate", f"run {run_id} already exists")
        self.runs[run_id] = RunState()

        def undo() -> None:
            self.runs.pop(run_id, None)

        return undo

    def _admit_task(self, record: Record) -> Undo:
        run, task_id, rnd = self._run(record), str(record.task), int(record["round"])
        if task_id in run.tasks:
            raise RuleViolation("task.duplicate", f"task {task_id} already exists")
        if rnd <= run.last_closed or rnd < run.max_task_round:
            raise RuleViolation(
                "round.not_increasing",
                f"round {rnd} is behind the run (last closed {run.last_closed}, "
                f"latest task round {run.max_task_round})",
            )
        recipients = frozenset(r["org"] for r in record["recipients"])
        self._known_orgs(recipients)
        previous_max = run.max_task_round
        run.tasks[task_id] = TaskState(round=rnd, recipients=recipients)
        run.by_round.setdefault(rnd, []).append(run.tasks[task_id])
        run.max_task_round = max(previous_max, rnd)

        def undo() -> None:
            run.by_round[rnd].remove(run.tasks.pop(task_id))
            run.max_task_round = previous_max

        return undo

    def _admit_update(self, record: Record) -> Undo:
        _, task = self._open_task(record)
        self._recipient(task, record.org, "update.not_recipient")
        if record.org in task.updates:
            raise RuleViolation("update.duplicate", f"{record.org} already answered {record.task}")
        task.updates[record.org] = record

        def undo() -> None:
            task.updates.pop(record.org, None)

        return undo

    def _admit_keys(self, record: Record) -> Undo:
        _, task = self._open_task(record)
        self._recipient(task, record.org, "keys.not_recipient")
        if record.org in task.keys:
            raise RuleViolation("keys.duplicate", f"{record.org} already published keys")
        task.keys.add(record.org)
        return lambda: task.keys.discard(record.org)

    def _admit_selection(self, record: Record) -> Undo:
        _, task = self._open_task(record)
        if task.selected is not None:
            raise RuleViolation("selection.duplicate", f"task {record.task} already has one")
        selected = frozenset(record["selected"])
        for org in sorted(selected):
            update = task.updates.get(org)
            if update is None or update["status"] != "ok":
                raise RuleViolation("selection.not_announced", f"{org} announced no ok update")
        task.selected = selected

        def undo() -> None:
            task.selected = None

        return undo

    def _admit_close(self, record: Record) -> Undo:
        run, rnd = self._run(record), int(record["round"])
        if rnd in run.closed or rnd <= run.last_closed:
            raise RuleViolation("round.closed", f"round {rnd} of {record.run} is already closed")
        tasks = run.round_tasks(rnd)
        if not tasks:
            raise RuleViolation("close.no_task", f"round {rnd} has no task to close")
        for item in record["aggregated"]:
            self._check_aggregated(tasks, item["org"], item["update_sha256"])
        participants = frozenset().union(*(t.recipients for t in tasks))
        for item in [*record["dropouts"], *record["rejected"]]:
            if item["org"] not in participants:
                raise RuleViolation("close.not_participant", f"{item['org']} had no task")
        previous = run.last_closed
        run.closed.add(rnd)
        run.last_closed = rnd

        def undo() -> None:
            run.closed.discard(rnd)
            run.last_closed = previous

        return undo

    @staticmethod
    def _check_aggregated(tasks: Iterable[TaskState], org: str, digest: str) -> None:
        for task in tasks:
            update = task.updates.get(org)
            if update is not None and update["update_sha256"] == digest:
                if task.selected is not None and org not in task.selected:
                    raise RuleViolation("close.not_selected", f"{org}'s update was not selected")
                return
        raise RuleViolation("close.not_announced", f"no update {digest[:12]} from {org}")

    def _known_orgs(self, orgs: Iterable[str]) -> None:
        unknown = sorted(set(orgs) - self.orgs)
        if unknown:
            raise RuleViolation("org.unknown", f"{', '.join(unknown)} not in the consortium")

    @staticmethod
    def _recipient(task: TaskState, org: str, rule: str) -> None:
        if org not in task.recipients:
            raise RuleViolation(rule, f"the task is not addressed to {org}")
