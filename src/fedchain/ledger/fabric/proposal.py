"""Fabric Gateway messages, built and parsed without any I/O.

Mirrors the message flow of hyperledger/fabric-gateway's clients (docs/fabric.md):

1. a transaction context: 24 random bytes of nonce, the creator
   ``msp.SerializedIdentity{mspid, id_bytes=PEM}`` and ``tx_id = hex(sha256(nonce || creator))``;
2. a proposal: ``ChannelHeader{ENDORSER_TRANSACTION, timestamp, channel, tx_id, epoch 0,
   extension=ChaincodeHeaderExtension{chaincode}}`` + ``SignatureHeader{creator, nonce}``, and
   the payload ``ChaincodeProposalPayload{ChaincodeInvocationSpec{chaincode, [fn, *args]}}``;
3. signed requests for commit status and chaincode events;
4. the transaction result inside the prepared transaction envelope the gateway returns.

Randomness and time are parameters (``nonce``, ``now``), so every byte is reproducible in tests.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2
from fabric_protos.orderer import ab_pb2
from fabric_protos.peer import (
    chaincode_pb2,
    proposal_pb2,
    proposal_response_pb2,
    transaction_pb2,
)
from google.protobuf import timestamp_pb2

from fedchain.errors import GatewayError
from fedchain.hashing import sha256_hex

__all__ = [
    "NONCE_BYTES",
    "TransactionContext",
    "build_proposal",
    "chaincode_events_request",
    "commit_status_request",
    "new_context",
    "transaction_id",
    "transaction_result",
]

NONCE_BYTES: Final = 24


def transaction_id(nonce: bytes, creator: bytes) -> str:
    """Fabric's transaction id: lowercase hex SHA-256 of ``nonce || creator``."""
    return sha256_hex(nonce + creator)


@dataclass(frozen=True)
class TransactionContext:
    """The nonce, creator and derived transaction id shared by a proposal and its envelope."""

    nonce: bytes
    creator: bytes
    tx_id: str

    def signature_header(self) -> bytes:
        header = common_pb2.SignatureHeader(creator=self.creator, nonce=self.nonce)
        data: bytes = header.SerializeToString()
        return data


def new_context(creator: bytes, nonce: bytes | None = None) -> TransactionContext:
    """A fresh context; ``nonce`` defaults to 24 bytes from the OS's CSPRNG."""
    nonce = secrets.token_bytes(NONCE_BYTES) if nonce is None else nonce
    return TransactionContext(nonce=nonce, creator=creator, tx_id=transaction_id(nonce, creator))


def _timestamp(now: float) -> Any:
    seconds = int(now)
    nanos = min(max(int((now - seconds) * 1e9), 0), 999_999_999)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def build_proposal(
    context: TransactionContext,
    *,
    channel: str,
    chaincode: str,
    function: str,
    args: Sequence[bytes] = (),
    transient: Mapping[str, bytes] | None = None,
    now: float | None = None,
) -> bytes:
    """Serialized ``peer.Proposal`` invoking ``function(*args)`` of ``chaincode`` on ``channel``."""
    chaincode_id = chaincode_pb2.ChaincodeID(name=chaincode)
    extension = proposal_pb2.ChaincodeHeaderExtension(chaincode_id=chaincode_id)
    channel_header = common_pb2.ChannelHeader(
        type=common_pb2.HeaderType.ENDORSER_TRANSACTION,
        channel_id=channel,
        tx_id=context.tx_id,
        epoch=0,
        extension=extension.SerializeToString(),
    )
    channel_header.timestamp.CopyFrom(_timestamp(time.time() if now is None else now))
    header = common_pb2.Header(
        channel_header=channel_header.SerializeToString(),
        signature_header=context.signature_header(),
    )
    spec = chaincode_pb2.ChaincodeSpec(
        type=chaincode_pb2.ChaincodeSpec.Type.NODE,
        chaincode_id=chaincode_id,
        input=chaincode_pb2.ChaincodeInput(args=[function.encode(), *args]),
    )
    invocation = chaincode_pb2.ChaincodeInvocationSpec(chaincode_spec=spec)
    payload = proposal_pb2.ChaincodeProposalPayload(
        input=invocation.SerializeToString(), TransientMap=dict(transient or {})
    )
    proposal = proposal_pb2.Proposal(
        header=header.SerializeToString(), payload=payload.SerializeToString()
    )
    data: bytes = proposal.SerializeToString()
    return data


def commit_status_request(channel: str, tx_id: str, creator: bytes) -> bytes:
    """Serialized ``gateway.CommitStatusRequest`` (the caller signs these bytes)."""
    request = gateway_pb2.CommitStatusRequest(
        channel_id=channel, transaction_id=tx_id, identity=creator
    )
    data: bytes = request.SerializeToString()
    return data


def chaincode_events_request(
    channel: str,
    chaincode: str,
    creator: bytes,
    *,
    start_block: int | None = None,
    after_tx_id: str | None = None,
) -> bytes:
    """Serialized ``gateway.ChaincodeEventsRequest``; no ``start_block`` means next commit."""
    request = gateway_pb2.ChaincodeEventsRequest(
        channel_id=channel, chaincode_id=chaincode, identity=creator
    )
    if start_block is None:
        request.start_position.next_commit.SetInParent()
    else:
        request.start_position.CopyFrom(
            ab_pb2.SeekPosition(specified=ab_pb2.SeekSpecified(number=start_block))
        )
    if after_tx_id:
        request.after_transaction_id = after_tx_id
    data: bytes = request.SerializeToString()
    return data


def transaction_result(envelope: Any, tx_id: str = "") -> bytes:
    """The chaincode's return value inside a prepared transaction ``common.Envelope``.

    Envelope.payload → Payload.data → Transaction.actions[0].payload → ChaincodeActionPayload
    .action.proposal_response_payload → ProposalResponsePayload.extension → ChaincodeAction
    .response.payload. A malformed envelope is the gateway's fault: GatewayError.
    """
    try:
        payload = common_pb2.Payload.FromString(envelope.payload)
        transaction = transaction_pb2.Transaction.FromString(payload.data)
        if not transaction.actions:
            raise ValueError("the transaction has no actions")
        action_payload = transaction_pb2.ChaincodeActionPayload.FromString(
            transaction.actions[0].payload
        )
        response_payload = proposal_response_pb2.ProposalResponsePayload.FromString(
            action_payload.action.proposal_response_payload
        )
        action = proposal_pb2.ChaincodeAction.FromString(response_payload.extension)
    except Exception as exc:  # protobuf DecodeError or the ValueError above
        raise GatewayError(f"malformed prepared transaction: {exc}", tx_id=tx_id) from exc
    result: bytes = action.response.payload
    return result
