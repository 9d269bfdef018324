"""Ordering and committing: envelopes in, blocks with validation codes and events out.

``broadcast`` checks the creator's signature over the envelope payload (as an orderer's
message filter does) and queues it. A cutter thread makes a block when ``batch_size``
envelopes are waiting or ``batch_timeout`` after the first one arrived (Fabric's BatchSize and
BatchTimeout), so concurrent submissions share blocks. The committer validates each
transaction of a block in order (signature, tx id, duplicate, endorsement policy, MVCC and
phantom reads against the state updated by the block's earlier valid transactions), applies the
valid ones, and records every transaction's code; block 0 is the (empty) genesis block.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fabric_protos.common import common_pb2
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import (
    chaincode_event_pb2,
    proposal_pb2,
    proposal_response_pb2,
    transaction_pb2,
)
from google.protobuf.message import DecodeError

from fedchain.pki import Consortium
from tests.fabric_support.peer import Rejected, check_creator
from tests.fabric_support.state import WorldState, validate


@dataclass(frozen=True)
class TxStatus:
    code: str
    block: int


@dataclass(frozen=True)
class Block:
    number: int
    tx_ids: list[str]
    events: list[Any] = field(default_factory=list)  # peer.ChaincodeEvent of valid txs, in order


class Ledger:
    """The channel: orderer queue, blocks, statuses; waiters are woken on every commit."""

    def __init__(
        self,
        state: WorldState,
        consortium: Consortium,
        *,
        channel: str,
        endorsements_required: int,
        batch_timeout: float = 0.01,
        batch_size: int = 10,
    ) -> None:
        self.state, self.consortium, self.channel = state, consortium, channel
        self.required = endorsements_required
        self.batch_timeout, self.batch_size = batch_timeout, batch_size
        self.blocks: list[Block] = [Block(0, [])]
        self.statuses: dict[str, TxStatus] = {}
        self.changed = threading.Condition()
        self._pending: list[Any] = []
        self._first_at = 0.0
        self._closed = False
        self._visible: int | None = None  # while delivery is held: blocks streams may see
        self._cutter = threading.Thread(target=self._cut_loop, name="orderer", daemon=True)
        self._cutter.start()

    # -- ordering --------------------------------------------------------------------------

    def broadcast(self, envelope: Any) -> None:
        """Accept an envelope for ordering if its creator signed it; Rejected otherwise."""
        header = _header(envelope)
        check_creator(self.consortium, header[1].creator, envelope.payload, envelope.signature,
                      self.channel)  # fmt: skip
        with self.changed:
            if not self._pending:
                self._first_at = time.monotonic()
            self._pending.append(envelope)
            self.changed.notify_all()

    def _cut_loop(self) -> None:
        with self.changed:
            while not self._closed:
                if not self._pending:
                    self.changed.wait()
                    continue
                due = self._first_at + self.batch_timeout - time.monotonic()
                if len(self._pending) < self.batch_size and due > 0:
                    self.changed.wait(due)
                    continue
                batch, self._pending = (
                    self._pending[: self.batch_size],
                    self._pending[self.batch_size :],
                )
                self._first_at = time.monotonic()
                self._commit(batch)
                self.changed.notify_all()

    # -- committing ------------------------------------------------------------------------

    def _commit(self, envelopes: list[Any]) -> None:
        number = len(self.blocks)
        block = Block(number, [])
        for index, envelope in enumerate(envelopes):
            tx_id, code, writes, event = self._validate(envelope, block)
            block.tx_ids.append(tx_id)
            if code == "VALID":
                self.state.apply(writes, (number, index))
                if event is not None:
                    block.events.append(event)
            self.statuses.setdefault(tx_id, TxStatus(code, number))
        self.blocks.append(block)

    def _validate(
        self, envelope: Any, block: Block
    ) -> tuple[str, str, dict[str, bytes | None], Any]:
        try:
            channel_header, signature_header = _header(envelope)
        except Rejected:
            return "", "BAD_PAYLOAD", {}, None
        tx_id = str(channel_header.tx_id)
        try:
            check_creator(
                self.consortium, signature_header.creator, envelope.payload, envelope.signature,
                self.channel,
            )  # fmt: skip
        except Rejected:
            return tx_id, "BAD_CREATOR_SIGNATURE", {}, None
        if channel_header.channel_id != self.channel:
            return tx_id, "TARGET_CHAIN_NOT_FOUND", {}, None
        derived = hashlib.sha256(signature_header.nonce + signature_header.creator).hexdigest()
        if tx_id != derived:
            return tx_id, "BAD_PROPOSAL_TXID", {}, None
        if tx_id in self.statuses or tx_id in block.tx_ids:
            return tx_id, "DUPLICATE_TXID", {}, None
        try:
            action, endorsements, response_payload = _action(envelope)
        except (DecodeError, IndexError):
            return tx_id, "BAD_PAYLOAD", {}, None
        if self._endorsing_orgs(endorsements, response_payload) < self.required:
            return tx_id, "ENDORSEMENT_POLICY_FAILURE", {}, None
        code, writes = validate(action.results, self.state.snapshot())
        event = None
        if action.events:
            event = chaincode_event_pb2.ChaincodeEvent.FromString(action.events)
        return tx_id, code, writes, event

    def _endorsing_orgs(self, endorsements: Any, payload: bytes) -> int:
        orgs = set()
        for endorsement in endorsements:
            try:
                msp_id = check_creator(
                    self.consortium,
                    endorsement.endorser,
                    payload + endorsement.endorser,
                    endorsement.signature,
                    self.channel,
                )
            except Rejected:
                continue
            orgs.add(msp_id)
        return len(orgs)

    # -- reading ---------------------------------------------------------------------------

    def height(self) -> int:
        with self.changed:
            return len(self.blocks)

    def wait_status(self, tx_id: str, cancelled: Callable[[], bool]) -> TxStatus | None:
        with self.changed:
            while tx_id not in self.statuses and not cancelled() and not self._closed:
                self.changed.wait()
            return self.statuses.get(tx_id)

    def wait_blocks(self, start: int, cancelled: Callable[[], bool]) -> list[Block]:
        """Blocks from ``start`` on, waiting for the first one; [] when cancelled or closed."""
        with self.changed:
            while self._deliverable() <= start and not cancelled() and not self._closed:
                self.changed.wait()
            return self.blocks[start : self._deliverable()]

    def _deliverable(self) -> int:
        return len(self.blocks) if self._visible is None else self._visible

    def hold_delivery(self) -> None:
        """Event streams deliver no block cut from now on (commits go on): a lagging peer."""
        with self.changed:
            self._visible = len(self.blocks)

    def release_delivery(self) -> None:
        with self.changed:
            self._visible = None
            self.changed.notify_all()

    def wake(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def close(self) -> None:
        with self.changed:
            self._closed = True
            self.changed.notify_all()
        self._cutter.join(5)


def _header(envelope: Any) -> tuple[Any, Any]:
    try:
        payload = common_pb2.Payload.FromString(envelope.payload)
        channel_header = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
        signature_header = common_pb2.SignatureHeader.FromString(payload.header.signature_header)
        identities_pb2.SerializedIdentity.FromString(signature_header.creator)
    except DecodeError as exc:
        raise Rejected(f"bad envelope: {exc}") from exc
    return channel_header, signature_header


def _action(envelope: Any) -> tuple[Any, Any, bytes]:
    payload = common_pb2.Payload.FromString(envelope.payload)
    transaction = transaction_pb2.Transaction.FromString(payload.data)
    action_payload = transaction_pb2.ChaincodeActionPayload.FromString(
        transaction.actions[0].payload
    )
    endorsed = action_payload.action
    response_payload = proposal_response_pb2.ProposalResponsePayload.FromString(
        endorsed.proposal_response_payload
    )
    action = proposal_pb2.ChaincodeAction.FromString(response_payload.extension)
    return action, endorsed.endorsements, bytes(endorsed.proposal_response_payload)
