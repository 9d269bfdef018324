"""``LocalGrid``: a Flower ``Grid`` that delivers messages to ClientApps in this process.

Real Flower objects end to end (strategies, workflows, ``ClientApp``s with their mods), no
network and no serialization: for tests, benchmarks and notebooks. Each node gets its own copy
of a message's config and metric records (apps and mods may modify them, as Flower's own
SecAgg+ mod does) while arrays are shared, read-only by convention. Each node has its own
``Context`` that lives as long as the grid, as a long-running organization would. A node whose
app raises answers with an error reply, as Flower's runtime does; ``silence`` makes chosen
messages go unanswered (an organization that died), and ``observe`` sees every reply.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flwr.app import ArrayRecord, Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid
from flwr.supercore.run import Run

from fedchain.runtime.messages import bind_task_identity

__all__ = ["LocalGrid"]

SERVER_NODE_ID = 1
_APP_RAISED = 2  # flwr ErrorCode.CLIENT_APP_RAISED_EXCEPTION


class LocalGrid(Grid):
    """Runs ``apps[node_id]`` for every message addressed to ``node_id``, in the caller's thread.

    ``node_config(node_id)`` gives each node's ``Context.node_config`` (e.g. its partition).
    ``silence(message) -> bool`` drops a message without a reply; ``observe(message, reply)``
    is called with every reply (e.g. to count the bytes an organization would upload).
    """

    def __init__(
        self,
        apps: Mapping[int, ClientApp],
        *,
        run_id: int = 1,
        node_config: Callable[[int], dict[str, Any]] | None = None,
        run_config: dict[str, Any] | None = None,
        silence: Callable[[Message], bool] | None = None,
        observe: Callable[[Message, Message], None] | None = None,
    ) -> None:
        self.apps = dict(apps)
        self.contexts = {
            node: Context(run_id, node, dict(node_config(node) if node_config else {}),
                          RecordDict(), dict(run_config or {}))
            for node in self.apps
        }
        self.silence = silence or (lambda _msg: False)
        self.observe = observe or (lambda _msg, _reply: None)
        self._run = Run.create_empty(run_id)
        self._ids = itertools.count(1)
        self._replies: dict[str, Message] = {}
        bind_task_identity(run_id, SERVER_NODE_ID)

    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(
        self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return sorted(self.apps)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for msg in messages:
            mid = f"local-{next(self._ids)}"
            msg.metadata.__dict__["_message_id"] = mid  # a Grid assigns ids when it pushes
            ids.append(mid)
            reply = self._deliver(msg)
            if reply is not None:
                self.observe(msg, reply)
                self._replies[mid] = reply
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._replies.pop(mid) for mid in message_ids if mid in self._replies]

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        return self.pull_messages(list(self.push_messages(messages)))

    def _deliver(self, msg: Message) -> Message | None:
        node = msg.metadata.dst_node_id
        if node not in self.apps:
            raise ValueError(f"unknown destination node {node}")
        if self.silence(msg):
            return None
        context = self.contexts[node]
        delivered = copy.copy(msg)  # same metadata: the reply answers ``msg``
        delivered.content = RecordDict({
            name: record if isinstance(record, ArrayRecord) else copy.deepcopy(record)
            for name, record in msg.content.items()
        })
        try:
            return self.apps[node](delivered, context)
        except Exception as exc:  # noqa: BLE001 - as Flower's runtime: the node answers an error
            return Message(Error(_APP_RAISED, f"{type(exc).__name__}: {exc}"), reply_to=msg)
        finally:
            bind_task_identity(self._run.run_id, SERVER_NODE_ID)
