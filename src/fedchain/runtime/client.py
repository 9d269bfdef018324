"""The organization's side of the protocol: follow the ledger, fetch, train, announce, upload.

For every task addressed to this organization the runtime fetches the payload from the
aggregator (the data plane checks its SHA-256 against the ledger's), checks the model hash the
ledger records, runs the Flower ``ClientApp`` (with its mods), announces the reply on the
ledger and keeps it until the aggregator's ``selection`` record asks for it; unselected
replies are never sent. Connections are outbound only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from flwr.app import Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable

from fedchain.errors import FedchainError, LedgerUnavailable, RuleViolation
from fedchain.flower.anchor import LedgerAnchor, anchored
from fedchain.hashing import sha256_hex
from fedchain.ledger import Entry, Ledger, Query, Record, parse_record
from fedchain.runtime.arrays import arrays_sha256
from fedchain.runtime.messages import (
    AGGREGATOR_NODE_ID,
    bind_task_identity,
    decode_payload,
    message_id,
    num_examples,
    run_number,
    single_arrays,
    small_metrics,
    with_metadata,
)
from fedchain.runtime.nodes import node_id
from fedchain.runtime.retry import publish
from fedchain.runtime.rounds import RUN_END
from fedchain.runtime.run_config import (
    ROUNDS_KEY,
    RunConfig,
    ledger_config,
    split_run_config,
)
from fedchain.runtime.service import doing, say
from fedchain.transport import DataPlaneClient
from fedchain.transport.flower_codec import encode_message

__all__ = ["ClientRuntime", "ClientSettings", "StopFlag"]

log = logging.getLogger(__name__)
Events = Callable[[str, dict[str, Any]], None]


@dataclass
class ClientSettings:
    """Which runs to follow and when to stop."""

    run: str | None = None
    exit_when_done: bool = False
    max_payload_bytes: int = 1 << 30
    node_config: dict[str, Any] = field(default_factory=dict)


class StopFlag(Protocol):
    """What :meth:`ClientRuntime.run` polls to stop (a ``threading.Event`` is one)."""

    def is_set(self) -> bool: ...


@dataclass
class _RunView:
    config: dict[str, Any]  # the run record's (numbers)
    closed: set[int] = field(default_factory=set)
    context: Context | None = None
    run_config: RunConfig | None = None  # the typed settings the context was built with
    joined: bool = False  # this organization has had a task of the run


class ClientRuntime:
    """Runs one organization's ``ClientApp`` against ledger-coordinated tasks."""

    def __init__(
        self,
        ledger: Ledger,
        dataplane: DataPlaneClient,
        app: ClientApp | ClientAppCallable,
        *,
        orgs: Sequence[str],
        settings: ClientSettings | None = None,
        events: Events | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ledger, self.dataplane, self.app = ledger, dataplane, app
        self.org = ledger.org
        self.settings = settings or ClientSettings()
        self._orgs = sorted(orgs)
        self._events = events or (lambda _name, _data: None)
        self._clock = clock
        self._runs: dict[str, _RunView] = {}
        # Task ids are unique within a run only (the ledger scopes them so): key by both.
        self._answered: set[tuple[str, str]] = set()  # (run, task)
        self._pending: dict[tuple[str, str], tuple[int, bytes, str]] = {}  # -> round, data, sha
        self._cursor = -1
        self.done = threading.Event()

    def run(self, stop: StopFlag | None = None) -> None:
        """Follow the ledger until ``stop`` is set (or the run is done, if so configured)."""
        stop = stop or threading.Event()
        backlog = self._read(0.0)
        for entry in backlog:
            self._learn(entry, live=False)
        for entry in backlog:
            if entry.record.kind == "task":
                self._maybe_handle(entry.record)
        while not stop.is_set() and not self.done.is_set():
            for entry in self._read(0.5):
                self._learn(entry)
                self._act(entry.record)

    def _read(self, timeout: float) -> list[Entry]:
        try:
            entries = self.ledger.wait(self._cursor, timeout)
        except LedgerUnavailable as exc:
            log.warning("ledger unavailable, retrying: %s", exc)
            time.sleep(min(timeout, 0.5) or 0.05)
            return []
        if entries:
            self._cursor = entries[-1].seq
        return entries

    def _follows(self, run: str | None) -> bool:
        return run is not None and (self.settings.run is None or run == self.settings.run)

    def _learn(self, entry: Entry, live: bool = True) -> None:
        """Update what we know of runs, closed rounds and our own answers.

        Without ``--run`` a run that had already finished before we started (``live=False``)
        is not the one to exit after: a ledger kept across runs holds many finished ones.
        """
        record = entry.record
        if not self._follows(record.run):
            return
        run = str(record.run)
        if record.kind == "run":
            self._runs[run] = _RunView(dict(record["config"]))
        elif (record.kind == "update" and record.org == self.org) or record.kind == "selection":
            self._answered.add((run, str(record.task)))  # answered, or too late: selected
        elif record.kind == "close" and run in self._runs:
            view = self._runs[run]
            view.closed.add(int(record["round"]))
            self._drop_round(run, int(record["round"]))
            if view.joined:
                self._events("closed", {"run": run, "round": int(record["round"])})
            finished = RUN_END in record["metrics"]  # the ServerApp returned (or failed)
            exiting = self.settings.exit_when_done and (live or bool(self.settings.run))
            if finished and (view.joined or exiting):
                self._say_finished(run, view, exiting)
            if finished and exiting:
                self.done.set()

    def _say_finished(self, run: str, view: _RunView, exiting: bool) -> None:
        count = len(view.closed)
        took = f"run {run} finished ({count} round{'' if count == 1 else 's'})"
        if exiting:
            say(self._events, "finished", f"{took}; exiting", run=run)
        else:
            say(self._events, "idle", f"{took}; idle until the next run", run=run)

    def _act(self, record: Record) -> None:
        if record.kind == "task":
            self._maybe_handle(record)
        elif record.kind == "selection" and self.org in record["selected"]:
            self._upload(str(record.run), str(record.task))

    def _maybe_handle(self, task: Record) -> None:
        view = self._runs.get(str(task.run))
        if (
            view is None
            or self.org not in {r["org"] for r in task["recipients"]}
            or (str(task.run), str(task.task)) in self._answered
            or int(task["round"]) in view.closed
            or task["deadline"] < self._clock() * 1000
        ):
            return
        self._handle(task, view)

    def _handle(self, task: Record, view: _RunView) -> None:
        run, rnd, task_id = str(task.run), int(task["round"]), str(task.task)
        if not view.joined:
            view.joined = True
            planned = view.config.get(ROUNDS_KEY)  # the app's plan: the bar's length
            rounds = int(planned) if isinstance(planned, int | float) and planned > 0 else None
            self._events("run", {"run": run, "rounds": rounds})
        say(self._events, "training", doing(str(task["type"]), rnd), round=rnd, run=run)
        self._events("task", {"round": rnd, "task": task_id, "type": task["type"]})
        try:
            message, config = self._fetch(task)
            context = self._context(run, view, config)
            anchor = LedgerAnchor(self.ledger, run=run, round=rnd, task=task_id)
            with anchored(anchor):  # lets a secure-aggregation mod anchor keys on the ledger
                reply = self._call_app(message, context)
        except FedchainError as exc:
            self._announce_error(task, f"{type(exc).__name__}: {exc}")
            return
        if reply.has_error():
            self._announce_error(task, f"ClientApp error: {reply.error.reason}")
            return
        data = encode_message(reply)
        digest = sha256_hex(data)
        record = self._update(
            task,
            "ok",
            digest,
            len(data),
            num_examples(reply.content),
            small_metrics(reply.content),
            None,
        )
        if self._publish(record):
            self._pending[run, task_id] = (rnd, data, digest)
            self._events("announced", {"round": rnd, "task": task_id, "bytes": len(data)})

    def _fetch(self, task: Record) -> tuple[Message, RunConfig | None]:
        """The task's message (checked against the ledger) and the run config it carried."""
        mine = next(r for r in task["recipients"] if r["org"] == self.org)
        data = self.dataplane.fetch(
            mine["payload_sha256"], max_size=self.settings.max_payload_bytes
        )
        message = decode_payload(data)
        config = split_run_config(message.content)
        expected = task["model_sha256"]
        if expected is not None:
            arrays = single_arrays(message.content)
            if arrays is None or arrays_sha256(arrays) != expected:
                raise FedchainError("the model received differs from the ledger's model hash")
        return with_metadata(
            message,
            message_id=message_id(str(task.task), self.org),
            src_node_id=AGGREGATOR_NODE_ID,
            dst_node_id=node_id(self.org),
            run_id=run_number(str(task.run)),
            message_type=str(task["type"]),
        ), config

    def _call_app(self, message: Message, context: Context) -> Message:
        bind_task_identity(context.run_id, context.node_id)
        try:
            return self.app(message, context)
        except Exception as exc:
            log.exception("ClientApp failed")
            raise FedchainError(f"{type(exc).__name__}: {exc}") from exc

    def _context(self, run: str, view: _RunView, config: RunConfig | None) -> Context:
        """The ClientApp's context for ``run`` (one per run: its ``state`` persists), its
        ``run_config`` the typed settings the task carried; they must agree with the run
        record's numbers and with every earlier task of the run."""
        settings: RunConfig = dict(view.config) if config is None else config
        if ledger_config(settings) != view.config:
            raise FedchainError("the task's run config differs from the run record's config")
        if view.run_config is not None and _typed(settings) != _typed(view.run_config):
            raise FedchainError("the task's run config differs from the run's earlier tasks")
        view.run_config = settings
        if view.context is None:
            index = self._orgs.index(self.org) if self.org in self._orgs else 0
            node_config = {
                "partition-id": index,
                "num-partitions": len(self._orgs),
                "org": self.org,
                **self.settings.node_config,
            }
            view.context = Context(
                run_number(run), node_id(self.org), node_config, RecordDict(), dict(settings)
            )
        return view.context

    def _update(
        self,
        task: Record,
        status: str,
        digest: str | None,
        size: int,
        examples: int,
        metrics: dict[str, float],
        error: str | None,
    ) -> dict[str, Any]:
        return {
            "v": 1,
            "kind": "update",
            "org": self.org,
            "run": task.run,
            "round": task["round"],
            "task": task.task,
            "status": status,
            "update_sha256": digest,
            "update_size": size,
            "num_examples": examples,
            "metrics": metrics,
            "error": error,
        }

    def _announce_error(self, task: Record, reason: str) -> None:
        log.warning("task %s failed: %s", task.task, reason)
        self._publish(self._update(task, "error", None, 0, 0, {}, reason[:1000]))
        self._events("error", {"round": task["round"], "task": task.task, "reason": reason})

    def _publish(self, record: dict[str, Any]) -> bool:
        batch = parse_record(record)
        try:
            publish(self.ledger, batch, what="announce an update")
        except RuleViolation as exc:  # e.g. the round closed while we trained
            log.warning("ledger refused our update: %s", exc)
            return False
        self._answered.add((str(record["run"]), str(record["task"])))
        return True

    def _upload(self, run: str, task: str) -> None:
        pending = self._pending.pop((run, task), None)
        if pending is None:
            return
        rnd, data, digest = pending
        try:
            self.dataplane.upload(data, digest, task=task)
        except FedchainError as exc:
            log.warning("upload for %s failed: %s", task, exc)
            return
        self._events("uploaded", {"round": rnd, "task": task, "bytes": len(data)})

    def _drop_round(self, run: str, rnd: int) -> None:
        for key in [k for k, p in self._pending.items() if k[0] == run and p[0] <= rnd]:
            del self._pending[key]

    def history(self) -> list[Entry]:
        """Every entry of the followed run(s), for reports."""
        return self.ledger.metadata_get(Query(run=self.settings.run))


def _typed(config: RunConfig) -> list[tuple[str, str, Any]]:
    """``config`` compared with its types (``True == 1`` and ``1 == 1.0`` in Python)."""
    return sorted((k, type(v).__name__, v) for k, v in config.items())
