"""The aggregator's receive path: from announced replies on the ledger to replies in hand.

The ledger says who answered a task and with which update hash; the selection policy picks from
that metadata alone, the selection is recorded, and only the selected updates cross the data
plane (the seed's communication saving). The data plane checks each upload against its ledger
hash; the reply must then answer this very task, hold what its task type requires and agree
with the org's ``update`` record (:mod:`fedchain.runtime.replies`), its arrays must fit the
model sent (G9), and the replies of one task must agree with each other, before a strategy sees
any of them. A refusal is recorded with its reason, a missing upload as a dropout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Protocol

from flwr.app import ArrayRecord, Error, Message
from flwr.common.constant import ErrorCode

from fedchain.errors import (
    FedchainError,
    HashMismatch,
    PayloadTooLarge,
    TransportError,
    UpdateRejected,
)
from fedchain.ledger import Ledger
from fedchain.runtime.messages import AGGREGATOR_NODE_ID, decode_payload, with_metadata
from fedchain.runtime.nodes import NodeMap
from fedchain.runtime.replies import check_content, inconsistent, reply_shape, task_kind
from fedchain.runtime.retry import retry_unavailable
from fedchain.runtime.rounds import RoundLog, TaskInfo
from fedchain.runtime.selection import Announcement, SelectionPolicy
from fedchain.transport import DataPlaneServer

__all__ = ["Events", "ReceiveSettings", "Receiver", "Sent", "checked_reply"]

log = logging.getLogger(__name__)
Events = Callable[[str, dict[str, Any]], None]
Publish = Callable[[list[dict[str, Any]], str], None]


class ReceiveSettings(Protocol):
    """The grid settings the receive path reads (``GridSettings`` has them all)."""

    @property
    def run(self) -> str: ...
    @property
    def wait_for(self) -> int | None: ...
    @property
    def selection(self) -> SelectionPolicy: ...
    @property
    def max_reply_bytes(self) -> int: ...
    @property
    def upload_grace_s(self) -> float: ...


@dataclass
class Sent:
    """A message the aggregator sent: its task, its recipient, and the model it carried."""

    task: str
    org: str
    message: Message
    arrays: ArrayRecord | None


class Receiver:
    """The replies side of a ``LedgerGrid``: tasks in flight, what was sent, what came back.

    The grid registers each task in :attr:`tasks` and each sent message in :attr:`sent`; the
    receiver fills :attr:`replies` and the round logs, and hands replies out once.
    """

    def __init__(
        self,
        ledger: Ledger,
        dataplane: DataPlaneServer,
        nodes: NodeMap,
        settings: ReceiveSettings,
        *,
        present: Callable[[], Iterable[str]],
        events: Events,
        publish: Publish,
        round_log: Callable[[int], RoundLog],
        run_id: Callable[[], int],
    ) -> None:
        self.ledger, self.dataplane, self.nodes, self.settings = ledger, dataplane, nodes, settings
        self._present, self._events, self._publish = present, events, publish
        self._round_log, self._run_id = round_log, run_id
        self.cursor = ledger.head()
        self.tasks: dict[str, TaskInfo] = {}
        self.sent: dict[str, Sent] = {}
        self.replies: dict[str, Message] = {}

    def pull(self, ids: list[str]) -> list[Message]:
        """Replies to ``ids`` available now: tasks complete or past their deadline are received
        without waiting (Flower's push/pull style)."""
        self.read_ledger(0.0)
        for task in {self.sent[i].task for i in ids if i in self.sent}:
            info = self.tasks[task]
            if info.selected is None and (info.complete(None) or time.monotonic() >= info.deadline):
                self.select_and_receive(info)
        return self.take(ids)

    def gather(self, ids: list[str]) -> list[Message]:
        """Wait for each task of ``ids`` in turn, then receive its selected replies."""
        tasks = [self.tasks[t] for t in dict.fromkeys(self.sent[i].task for i in ids)]
        for info in tasks:
            self.wait_announced(info)
            self.select_and_receive(info)
        return self.take(ids)

    def take(self, ids: list[str]) -> list[Message]:
        """The replies to ``ids`` received so far, each handed out once."""
        return [self.replies.pop(i) for i in ids if i in self.replies]

    def read_ledger(self, timeout: float) -> None:
        """Note the update records for our tasks that reached the ledger (waits ``timeout``)."""
        entries = retry_unavailable(
            lambda: self.ledger.wait(self.cursor, timeout), what="read the ledger"
        )
        for entry in entries:
            self.cursor = entry.seq
            record = entry.record
            info = self.tasks.get(record.task or "")
            if record.kind == "update" and info is not None and record.org in info.recipients:
                info.announced[record.org] = dict(record.data)
                self._events(
                    "announced",
                    {
                        "round": info.round,
                        "org": record.org,
                        "status": record["status"],
                        "task": info.task,
                    },
                )

    def wait_announced(self, info: TaskInfo) -> None:
        """Until every recipient answered (or ``wait_for`` did), the deadline passed, or every
        recipient still silent has disconnected (a dead organization does not stall a round)."""
        while not info.complete(self.settings.wait_for):
            remaining = info.deadline - time.monotonic()
            silent = set(info.recipients) - set(info.announced)
            if remaining <= 0 or not silent & set(self._present()):
                return
            self.read_ledger(min(remaining, 0.5))

    def select_and_receive(self, info: TaskInfo) -> None:
        """Select among the ``ok`` announcements, record the selection, receive the chosen
        replies, and log the others as dropouts or error replies."""
        rlog = self._round_log(info.round)
        ok = [
            Announcement(org, rec["update_sha256"], rec["num_examples"], rec["metrics"])
            for org, rec in sorted(info.announced.items())
            if rec["status"] == "ok"
        ]
        chosen = set(self.settings.selection(ok)) & {a.org for a in ok}
        info.selected = sorted(chosen)
        futures = {
            a.org: self.dataplane.expect(a.org, a.update_sha256, self.settings.max_reply_bytes)
            for a in ok
            if a.org in chosen
        }
        if futures:
            self._record_selection(info)
        self._note_unanswered(info, rlog)
        deadline = time.monotonic() + self.settings.upload_grace_s
        for org, future in futures.items():
            self._receive(info, org, future, deadline, rlog)
        self._refuse_inconsistent(info, rlog)
        for digest in info.payloads:
            self.dataplane.withdraw(digest)

    def _record_selection(self, info: TaskInfo) -> None:
        """Publish the ``selection`` record of a task (before any update is fetched)."""
        record = {
            "v": 1,
            "kind": "selection",
            "org": self.ledger.org,
            "run": self.settings.run,
            "round": info.round,
            "task": info.task,
            "selected": info.selected,
        }
        self._publish([record], "record a selection")
        self._events(
            "selected", {"round": info.round, "task": info.task, "selected": info.selected}
        )

    def _note_unanswered(self, info: TaskInfo, rlog: RoundLog) -> None:
        """Silent recipients drop out at this stage; an ``error`` update becomes an error reply."""
        for org, mid in info.recipients.items():
            rec = info.announced.get(org)
            if rec is None:
                rlog.drop(org, info.type)
            elif rec["status"] == "error":
                rlog.drop(org, "error")
                self.replies[mid] = self._error_reply(mid, str(rec["error"]))

    def _receive(
        self, info: TaskInfo, org: str, future: Future[bytearray], deadline: float, rlog: RoundLog
    ) -> None:
        """Fetch one selected reply; keep it if it passes, else record why not."""
        mid = info.recipients[org]
        sent = self.sent[mid]
        try:
            data = future.result(timeout=max(deadline - time.monotonic(), 0.0))
            reply = checked_reply(org, mid, sent, data, info.announced[org])
        except (UpdateRejected, PayloadTooLarge, HashMismatch) as exc:  # refused, with a reason
            self._refuse(info, org, exc.reason if isinstance(exc, UpdateRejected) else str(exc))
            return
        except (FutureTimeout, TransportError, FedchainError) as exc:
            future.cancel()
            rlog.drop(org, "upload")
            log.warning("no usable upload from %s for %s: %s", org, info.task, exc)
            return
        except Exception as exc:  # noqa: BLE001 - a malformed payload from a peer
            self._refuse(info, org, f"undecodable reply: {type(exc).__name__}")
            return
        if info.type.startswith("train") and sent.arrays is not None:  # a model was sent
            rlog.aggregated[org] = str(info.announced[org]["update_sha256"])
        self.replies[mid] = self._addressed(reply, mid, sent)
        self._events("received", {"round": info.round, "org": org, "bytes": len(data)})

    def _refuse_inconsistent(self, info: TaskInfo, rlog: RoundLog) -> None:
        """Refuse the received train/evaluate replies of ``info`` whose records or metric keys
        differ from the others' (Flower's strategies would refuse the whole round)."""
        shapes = {}
        for org, mid in info.recipients.items():
            reply = self.replies.get(mid)
            sent = self.sent[mid]
            kind = task_kind(sent.message.metadata.message_type, sent.message.content)
            if reply is not None and not reply.has_error() and kind in {"train", "evaluate"}:
                shapes[org] = reply_shape(reply.content)
        for org, reason in inconsistent(shapes, self.ledger.org).items():
            rlog.aggregated.pop(org, None)
            self._refuse(info, org, reason)

    def _refuse(self, info: TaskInfo, org: str, reason: str) -> None:
        """Record ``org``'s refused reply (the reason goes on the ``close`` record) and hand the
        strategy an error reply in its place, as Flower's runtime does for a failed node: the
        strategy counts it among its failures (DP wrappers and custom strategies see it)."""
        self._round_log(info.round).rejected[org] = reason
        mid = info.recipients[org]
        self.replies[mid] = self._error_reply(mid, f"refused by the aggregator: {reason}")
        self._events("rejected", {"round": info.round, "org": org, "reason": reason})

    def _addressed(self, reply: Message, mid: str, sent: Sent) -> Message:
        """``reply`` with the metadata of an answer to ``sent`` (as Flower's own grid sets it)."""
        return with_metadata(
            reply,
            message_id=f"{mid}/reply",
            src_node_id=self.nodes.node(sent.org),
            dst_node_id=AGGREGATOR_NODE_ID,
            reply_to_message_id=mid,
            message_type=sent.message.metadata.message_type,
            group_id=sent.message.metadata.group_id,
            run_id=self._run_id(),
        )

    def _error_reply(self, mid: str, reason: str) -> Message:
        """The error reply Flower expects from a recipient that announced a failure."""
        sent = self.sent[mid]
        reply = Message(Error(code=ErrorCode.UNKNOWN, reason=reason), reply_to=sent.message)
        return with_metadata(
            reply, src_node_id=self.nodes.node(sent.org), message_id=f"{mid}/reply"
        )


def checked_reply(
    org: str, mid: str, sent: Sent, data: bytearray, announced: dict[str, Any]
) -> Message:
    """Decode ``data`` as ``org``'s reply to message ``mid``; refuse a reply to another task
    (a replay), one that lacks or adds records its task type requires or forbids, whose
    ``num-examples`` or metrics are not what ``announced`` (its ``update`` record) says, and
    arrays that do not fit the model sent (G9)."""
    reply = decode_payload(data)
    if reply.metadata.reply_to_message_id != mid:
        raise UpdateRejected(org, "reply does not answer this task (replayed?)")
    if reply.has_error():  # only ``ok`` announcements are fetched
        raise UpdateRejected(org, "announced as ok, the reply is an error")
    kind = task_kind(sent.message.metadata.message_type, sent.message.content)
    check_content(org, kind, reply.content, sent.arrays, announced)
    return reply
