"""``LedgerGrid``: a Flower ``Grid`` whose message exchange is the seed protocol.

``send_and_receive`` publishes the tasks on the ledger (one transaction per call), serves the
payloads on the data plane, waits on the ledger (``Ledger.wait``, no polling of its own) until
the recipients announced their replies or the deadline passes, applies the selection policy to
the announced metadata, records the selection, and receives only the selected replies, each
checked against its ledger hash and validated before the strategy sees it (that receive path is
:mod:`fedchain.runtime.receive`). Any Flower strategy or workflow that talks to a ``Grid`` runs
on it unchanged.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, Message, RecordDict
from flwr.serverapp import Grid
from flwr.supercore.run import Run

from fedchain.errors import FedchainError
from fedchain.hashing import sha256_hex
from fedchain.ledger import Ledger, Query, parse_record
from fedchain.runtime.arrays import arrays_sha256
from fedchain.runtime.messages import (
    AGGREGATOR_NODE_ID,
    bind_task_identity,
    encode_payload,
    message_id,
    run_number,
    single_arrays,
)
from fedchain.runtime.nodes import NodeMap
from fedchain.runtime.receive import Events, Receiver, Sent
from fedchain.runtime.retry import publish
from fedchain.runtime.rounds import RUN_END, RoundLog, TaskInfo, finite_metrics, with_run_end
from fedchain.runtime.run_config import with_run_config
from fedchain.runtime.runs import ResumePoint, resume_point, run_record
from fedchain.runtime.selection import SelectionPolicy, take_all
from fedchain.transport import DataPlaneServer

__all__ = ["GridSettings", "LedgerGrid"]

log = logging.getLogger(__name__)


@dataclass
class GridSettings:
    """How the aggregator runs rounds: deadlines, early stop, selection, limits."""

    run: str
    deadline_s: float = 120.0
    upload_grace_s: float = 60.0
    wait_for: int | None = None
    selection: SelectionPolicy = field(default_factory=take_all)
    max_reply_bytes: int = 1 << 30
    models_dir: Path | None = None
    app_sha256: str = "0" * 64
    config: dict[str, Any] = field(default_factory=dict)  # the run record's (numbers)
    run_config: dict[str, Any] | None = None  # typed, sent with every task (run_config.py)


class LedgerGrid(Grid):
    """The aggregator's side of the protocol, as a Flower ``Grid``."""

    def __init__(
        self,
        ledger: Ledger,
        dataplane: DataPlaneServer,
        orgs: Sequence[str],
        settings: GridSettings,
        *,
        present: Callable[[], Iterable[str]] | None = None,
        events: Events | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ledger, self.dataplane, self.settings = ledger, dataplane, settings
        self.nodes = NodeMap(orgs)
        self._orgs = tuple(orgs)
        self._present = present or (lambda: self._orgs)
        self._events = events or (lambda _name, _data: None)
        self._clock = clock
        self._run = Run.create_empty(run_number(settings.run))
        bind_task_identity(self._run.run_id, AGGREGATOR_NODE_ID)
        self._receiver = Receiver(
            ledger,
            dataplane,
            self.nodes,
            settings,
            present=self._present,
            events=self._events,
            publish=self._publish,
            round_log=self.round_log,
            run_id=lambda: self._run.run_id,
        )
        self._rounds: dict[int, RoundLog] = {}
        self._counter: itertools.count[int] | None = None
        self.round_offset = 0
        self._run_started = False
        self._known_model: tuple[ArrayRecord, str] | None = None
        self._held: list[tuple[dict[str, Any], dict[str, Any]]] = []  # close records, events
        self._serving = False  # inside closing_rounds(): every close waits for the next write
        self.strategies_started = 0  # LedgerStrategy runs started on this grid (this process)

    # -- Grid API -----------------------------------------------------------------------

    def set_run(self, run: Run) -> None:
        self._run = run
        bind_task_identity(run.run_id, AGGREGATOR_NODE_ID)

    @property
    def run(self) -> Run:
        return self._run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return [self.nodes.node(org) for org in sorted(self._present()) if org in self._orgs]

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self._push(list(messages), self.settings.deadline_s)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self._receiver.pull(list(message_ids))

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        ids = list(self._push(list(messages), self.effective_deadline(timeout)))
        return self._receiver.gather(ids)

    def effective_deadline(self, timeout: float | None) -> float:
        """Seconds a task waits for replies: the smaller of the strategy's ``timeout`` (Flower's
        ``Strategy.start`` passes 3600 by default) and the aggregator's ``--deadline``."""
        if timeout is None or timeout <= 0:
            return self.settings.deadline_s
        return min(float(timeout), self.settings.deadline_s)

    # -- runs and rounds ----------------------------------------------------------------

    def resume_point(self) -> ResumePoint:
        """Where this run stands on the ledger (a restarted aggregator continues from here)."""
        return resume_point(self.ledger, self.settings.run)

    def ensure_run(self, model_sha256: str, strategy: str = "0" * 64) -> None:
        """Write the ``run`` record unless the run already exists on the ledger."""
        if self._run_started or self.resume_point().started:
            self._run_started = True
            return
        record = run_record(
            self.ledger.org,
            self.settings.run,
            app=self.settings.app_sha256,
            strategy=strategy,
            model=model_sha256,
            config=self.settings.config,
        )
        self._publish([record], "start the run")
        self._run_started = True
        self._events("run", {"run": self.settings.run, "model_sha256": model_sha256})

    def remember_model(self, arrays: ArrayRecord, digest: str) -> None:
        """Tell the grid the hash of a model it is about to send (hashing 40 MB takes time)."""
        self._known_model = (arrays, digest)

    def round_log(self, rnd: int) -> RoundLog:
        """The bookkeeping of round ``rnd`` (created on first use)."""
        return self._rounds.setdefault(rnd, RoundLog(rnd))

    def close_round(
        self,
        rnd: int,
        *,
        model_sha256: str | None,
        metrics: dict[str, Any] | None = None,
        defer: bool = False,
    ) -> None:
        """Publish the ``close`` record of round ``rnd`` (once).

        ``defer=True`` (a round that is not the run's last) holds the record back to go in the
        same transaction as the next tasks: on Fabric that saves one block interval per round.
        A held close is published by the next write or :meth:`flush`; an aggregator that dies
        before then redoes the round on resume, as if it had died just before closing.
        """
        log_ = self.round_log(rnd)
        if log_.closed:
            return
        record = log_.close_record(self.ledger.org, self.settings.run, model_sha256, metrics)
        log_.closed = True
        self._held.append((record, {"round": rnd, "model_sha256": model_sha256, **(metrics or {})}))
        if not defer and not self._serving:
            self.flush()

    def add_close_metrics(self, rnd: int, metrics: dict[str, Any]) -> None:
        """Add ``metrics`` to round ``rnd``'s ``close`` record while it is held back (a
        ServerApp's central evaluation comes after the round closed)."""
        for record, event in self._held:
            if record["round"] == rnd:
                end = record["metrics"].get(RUN_END)
                record["metrics"] = finite_metrics(record["metrics"], metrics)
                if end is not None:
                    record["metrics"] = with_run_end(record["metrics"], failed=end == 0)
                event.update(record["metrics"])
                return
        log.info("round %d is already on the ledger: its central evaluation is not", rnd)

    def flush(self) -> None:
        """Publish any ``close`` record held back by ``close_round(..., defer=True)``."""
        if self._held:
            self._publish([], "close a round", with_held=True)

    @contextlib.contextmanager
    def closing_rounds(self) -> Iterator[None]:
        """Around a ServerApp: the run ends when it returns or raises (:meth:`end_run`). Until
        then every ``close`` is held for the next write, so the last one can carry the end."""
        self._serving = True
        try:
            yield
        except Exception:
            with contextlib.suppress(FedchainError):  # the app's error is the one to report
                self.end_run(failed=True)
            raise
        finally:
            self._serving = False
        self.end_run(failed=False)

    def end_run(self, *, failed: bool) -> None:
        """Close the rounds left open and mark the last ``close`` as the run's end
        (:data:`~fedchain.runtime.rounds.RUN_END`): organizations with ``--exit-when-done``
        exit on it, whatever the app's round count or numbering."""
        for rnd in self.open_rounds():
            self.close_round(rnd, model_sha256=None, defer=True)
        if self._held:
            record, event = self._held[-1]
            record["metrics"] = with_run_end(record["metrics"], failed=failed)
            event[RUN_END] = record["metrics"][RUN_END]
        elif self._run_started:
            log.warning("run %s: no round left to close, so its end is not recorded",
                        self.settings.run)  # fmt: skip
        self.flush()

    def last_round(self) -> int:
        """The highest round this grid has opened (0 before any)."""
        return max(self._rounds, default=0)

    def open_rounds(self) -> list[int]:
        return sorted(r for r, lg in self._rounds.items() if not lg.closed)

    # -- the protocol -------------------------------------------------------------------

    def _round_of(self, message: Message) -> int:
        """The round a message belongs to: its group id when numeric (Flower's convention),
        else the ``server-round`` its config carries (Flower's strategies set it), else the
        round in progress."""
        group = message.metadata.group_id
        if group.isdigit():
            return int(group) + self.round_offset
        if message.has_content():
            for record in message.content.config_records.values():
                value = record.get("server-round")
                if isinstance(value, int) and not isinstance(value, bool):
                    return value + self.round_offset
        return max(self._rounds, default=1)

    def _push(self, messages: list[Message], deadline_s: float) -> list[str]:
        groups: dict[tuple[int, str], list[Message]] = {}
        for msg in messages:
            if msg.metadata.dst_node_id not in self.nodes:
                raise ValueError(f"unknown destination node {msg.metadata.dst_node_id}")
            key = (self._round_of(msg), msg.metadata.message_type)
            groups.setdefault(key, []).append(msg)
        records, ids = [], []
        for (rnd, mtype), group in groups.items():
            record, group_ids = self._open_task(rnd, mtype, group, deadline_s)
            records.append(record)
            ids.extend(group_ids)
        if not self._run_started:
            self.ensure_run(
                next((r["model_sha256"] for r in records if r["model_sha256"]), "0" * 64)
            )
        self._auto_close(min((r for r, _ in groups), default=0))
        if records:
            self._publish(records, "open tasks", with_held=True)  # one transaction with closes
        for record in records:
            self._events(
                "task",
                {
                    "round": record["round"],
                    "task": record["task"],
                    "type": record["type"],
                    "recipients": len(record["recipients"]),
                },
            )
        return ids

    def _task_name(self, rnd: int, mtype: str) -> str:
        """A task id unique in the run (numbered on from the ledger after a restart)."""
        if self._counter is None:
            done = self.ledger.metadata_get(Query(run=self.settings.run, kind="task"))
            self._counter = itertools.count(len(done) + 1)
        return f"r{rnd}.{mtype}.{next(self._counter)}"

    def _open_task(
        self, rnd: int, mtype: str, group: list[Message], deadline_s: float
    ) -> tuple[dict[str, Any], list[str]]:
        """Offer a group's payloads, register the task with the receiver, build its record."""
        task = self._task_name(rnd, mtype)
        payloads: dict[int, tuple[str, bytes]] = {}
        recipients, ids, model_sha = [], [], None
        for msg in group:
            org = self.nodes.org(msg.metadata.dst_node_id)
            if id(msg.content) not in payloads:
                content = msg.content
                if self.settings.run_config is not None:
                    content = with_run_config(content, self.settings.run_config)
                data = encode_payload(content, mtype, msg.metadata.group_id, msg.metadata.ttl)
                payloads[id(msg.content)] = (sha256_hex(data), data)
            digest, data = payloads[id(msg.content)]
            self.dataplane.offer(digest, data, [org], verify=False)
            arrays = single_arrays(msg.content)
            if arrays is not None and model_sha is None:
                known = self._known_model
                model_sha = known[1] if known and known[0] is arrays else arrays_sha256(arrays)
            mid = message_id(task, org)
            msg.metadata.__dict__["_message_id"] = mid
            self._receiver.sent[mid] = Sent(task, org, msg, arrays)
            recipients.append({"org": org, "payload_sha256": digest, "payload_size": len(data)})
            ids.append(mid)
        deadline = time.monotonic() + deadline_s
        self._receiver.tasks[task] = TaskInfo(
            task,
            rnd,
            mtype,
            {str(r["org"]): message_id(task, str(r["org"])) for r in recipients},
            deadline,
            model_sha,
            payloads={digest for digest, _ in payloads.values()},
        )
        self.round_log(rnd)
        return self._task_record(rnd, task, mtype, model_sha, deadline_s, recipients), ids

    def _task_record(
        self,
        rnd: int,
        task: str,
        mtype: str,
        model_sha: str | None,
        deadline_s: float,
        recipients: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """The ``task`` record announcing ``task`` to its recipients."""
        return {
            "v": 1,
            "kind": "task",
            "org": self.ledger.org,
            "run": self.settings.run,
            "round": rnd,
            "task": task,
            "type": mtype,
            "model_sha256": model_sha,
            "deadline": int((self._clock() + deadline_s) * 1000),
            "recipients": recipients,
        }

    def _auto_close(self, rnd: int) -> None:
        """Close rounds older than ``rnd`` that nobody closed (strategies without a wrapper)."""
        for old in self.open_rounds():
            if old < rnd:
                self.close_round(old, model_sha256=None, defer=True)

    def _publish(
        self, records: list[dict[str, Any]], what: str, *, with_held: bool = False
    ) -> None:
        """Publish ``records`` in one transaction; ``with_held`` puts the held ``close`` records
        first in it (tasks of a later round may follow a close; a selection may not, since
        ``round.closed`` refuses it for a closed round, so other writes publish them apart)."""
        if self._held and records and not with_held:
            self._publish([], "close a round", with_held=True)
        held, self._held = self._held, []
        batch = [parse_record(r) for r, _ in held] + [parse_record(r) for r in records]
        try:
            publish(self.ledger, batch, what=what)
        except BaseException:
            self._held = held + self._held
            raise
        for _, event in held:
            self._events("closed", event)
