"""One secure-aggregation round driven over a Flower ``Grid``: the aggregator's message plumbing.

:class:`SecureRound` moves the messages of a :class:`~fedchain.secagg.ServerSession` through
``grid.send_and_receive``: setup and keys before training, the neighbours' shares riding on
the train messages, and the unmask request after them. Stage messages have the train messages'
type (so they reach the ClientApp's train function, where ``secagg_mod`` wraps it) and the
round number as group id. The sender of a reply is its ``src_node_id``: on fedchain's
``LedgerGrid`` that is the organization authenticated by mTLS and the ledger.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from fedchain.errors import ConfigError, ProtocolError, SecAggError, StageError
from fedchain.flower.secagg_codec import (
    SECAGG_RECORD,
    MaskingSpec,
    decode_client,
    encode,
    secagg_record,
)
from fedchain.flower.secagg_layout import ArrayLayout, mean_metrics
from fedchain.secagg import AggregateResult, RoundConfig, ServerMessage, ServerSession, Stage

__all__ = ["RoundReport", "SecureRound"]

log = logging.getLogger(__name__)


@dataclass
class RoundReport:
    """What one secure round came to, by Flower node id (for logs and the ledger)."""

    contributors: tuple[int, ...] = ()
    dropouts: dict[int, Stage] = field(default_factory=dict)  # node -> stage it missed
    refused: dict[int, str] = field(default_factory=dict)  # node -> why its reply was refused
    failure: str | None = None  # why the round produced no aggregate
    total_weight: int = 0
    misbehaving: set[int] = field(default_factory=set)  # left out over share-box disputes
    accusations: dict[int, tuple[int, ...]] = field(default_factory=dict)  # accuser -> accused


class SecureRound:
    """The aggregator's side of one round, over ``grid``."""

    def __init__(
        self, grid: Grid, config: RoundConfig, spec: MaskingSpec, train: list[Message],
        *, group_id: str, timeout: float | None = None,
    ) -> None:
        self.grid, self.config, self.spec, self.train = grid, config, spec, train
        self.group_id, self.timeout = group_id, timeout
        self.session = ServerSession(config)
        self.report = RoundReport()
        self.array_key, model = model_of(train[0])
        self.layout = ArrayLayout.of(model)
        self._type = train[0].metadata.message_type

    # -- before training ----------------------------------------------------------------

    def prepare(self) -> list[Message]:
        """Run setup and key exchange; the train messages with each node's shares attached.

        Raises :class:`SecAggError` (recorded in :attr:`report`) when too few remain.
        """
        setup = {org: encode(m, self.spec) for org, m in self.session.start().items()}
        self._feed(self.grid.send_and_receive(self._messages(setup), timeout=self.timeout))
        keys = self._advance()
        self._feed(self.grid.send_and_receive(self._messages(keys), timeout=self.timeout))
        deliveries = self._advance()
        out = []
        for msg in self.train:
            record = deliveries.get(str(msg.metadata.dst_node_id))
            if record is None:
                continue  # dropped during setup or key exchange
            content = RecordDict({**dict(msg.content.items()), SECAGG_RECORD: record})
            out.append(Message(content, msg.metadata.dst_node_id, msg.metadata.message_type,
                               ttl=msg.metadata.ttl, group_id=msg.metadata.group_id))
        return out

    # -- after training -----------------------------------------------------------------

    def finish(self, replies: Iterable[Message]) -> AggregateResult:
        """Collect the masked replies, run the unmask stage, and return the unmasked sum."""
        self._feed(replies)
        unmask = self._advance()
        self._feed(self.grid.send_and_receive(self._messages(unmask), timeout=self.timeout))
        try:
            result = self.session.finish()
        except SecAggError as exc:
            self._fail(exc)
            raise
        finally:
            self._note_dropouts()
        self.report.contributors = tuple(sorted(int(org) for org in result.contributors))
        self.report.total_weight = result.total_weight
        return result

    def reply_from(self, result: AggregateResult) -> Message:
        """One synthetic train reply holding the weighted mean, as FedAvg expects replies."""
        mean = result.mean()
        metrics = mean_metrics(mean, self.layout, self.spec, self.config.clip,
                               result.total_weight)
        content = RecordDict({self.array_key: self.layout.unflatten(mean), "metrics": metrics})
        return Message(content, reply_to=self.train[0])

    # -- plumbing -----------------------------------------------------------------------

    def _messages(self, outbox: Mapping[str, ConfigRecord]) -> list[Message]:
        return [
            Message(RecordDict({SECAGG_RECORD: record}), int(org), self._type,
                    group_id=self.group_id)
            for org, record in outbox.items()
        ]

    def _advance(self) -> dict[str, ConfigRecord]:
        try:
            outbox: dict[str, ServerMessage] = self.session.advance()
        except SecAggError as exc:
            self._fail(exc)
            raise
        finally:
            self._note_dropouts()
        return {org: encode(m) for org, m in outbox.items()}

    def _feed(self, replies: Iterable[Message]) -> None:
        for reply in replies:
            node = reply.metadata.src_node_id
            if reply.has_error():
                log.info("node %d answered with an error: %s", node, reply.error.reason)
                continue
            record = secagg_record(reply.content)
            try:
                if record is None:
                    raise ProtocolError("the reply carries no secure-aggregation record")
                self.session.receive(str(node), decode_client(record))
            except (ProtocolError, StageError) as exc:
                log.warning("refused a secure-aggregation reply from node %d: %s", node, exc)
                self.report.refused.setdefault(node, str(exc))

    def _note_dropouts(self) -> None:
        for stage, orgs in self.session.dropouts.items():
            for org in orgs:
                self.report.dropouts.setdefault(int(org), stage)
        for org in self.session.misbehaving:
            self.report.misbehaving.add(int(org))
        for org, accused in self.session.accusations.items():
            self.report.accusations[int(org)] = tuple(sorted(int(u) for u in accused))

    def _fail(self, exc: Exception) -> None:
        self.report.failure = f"{type(exc).__name__}: {exc}"
        log.warning("secure aggregation failed: %s", self.report.failure)


def model_of(message: Message) -> tuple[str, ArrayRecord]:
    """The name and value of the one model ``ArrayRecord`` a train message carries."""
    found = list(message.content.array_records.items()) if message.has_content() else []
    if len(found) != 1:
        raise ConfigError("secure aggregation needs train messages carrying one ArrayRecord")
    return found[0]
