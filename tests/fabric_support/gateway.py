"""A test ``gateway.Gateway`` service: what a Fabric Gateway peer does, minus the network.

It answers as Fabric 2.5's gateway does (internal/pkg/gateway): ``Evaluate`` runs the proposal
on the gateway's own peer; ``Endorse`` runs it on every endorsing peer concurrently, requires
identical ``ProposalResponsePayload`` bytes and assembles the prepared transaction envelope;
``Submit`` hands the signed envelope to the orderer; ``CommitStatus`` blocks until the
transaction commits; ``ChaincodeEvents`` streams one response per block holding events of the
chaincode. Failures carry ``gateway.ErrorDetail`` values in ``grpc-status-details-bin``, with
the same codes and messages as a real Fabric 2.5.12 gateway (checked side by side in
``tests/integration/test_fabric_gateway_parity.py``): e.g. a chaincode refusal during
endorsement is ``ABORTED`` with the detail ``chaincode response 500, <message>`` from the
gateway's own peer (the others are asked only once it endorsed), a creator Fabric's MSP refuses
is ``creator org unknown, creator is malformed``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn

import grpc
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2, gateway_pb2_grpc
from fabric_protos.peer import proposal_pb2, transaction_pb2
from google.protobuf.message import DecodeError

from fedchain.ledger.fabric.status import DETAILS_KEY, Detail, encode_status
from fedchain.pki import Consortium
from tests.fabric_support.ledger import Ledger
from tests.fabric_support.peer import (
    NOT_A_READER,
    EndorsingPeer,
    ParsedProposal,
    Rejected,
    check_creator,
    parse_proposal,
)

#: The real gateway's answer when the orderer refuses a transaction's signer (no details).
ORDERER_FORBIDDEN = (
    "received unsuccessful response from orderer: status=FORBIDDEN, info=implicit policy "
    "evaluation failed - 0 sub-policies were satisfied, but this policy requires 1 of the "
    "'Writers' sub-policies to be satisfied: permission denied"
)


def _abort(
    context: Any, code: grpc.StatusCode, message: str, details: Sequence[Detail] = ()
) -> NoReturn:
    if details:
        context.set_trailing_metadata([(DETAILS_KEY, encode_status(code, message, details))])
    context.abort(code, message)
    raise AssertionError("unreachable: context.abort raises")


class GatewayService(gateway_pb2_grpc.GatewayServicer):  # type: ignore[misc]
    """The Gateway service over endorsing peers (the first is the gateway's own) and a ledger."""

    def __init__(
        self, peers: Sequence[EndorsingPeer], ledger: Ledger, consortium: Consortium, channel: str
    ) -> None:
        self.peers, self.ledger, self.consortium, self.channel = (
            list(peers),
            ledger,
            consortium,
            channel,
        )
        self._pool = ThreadPoolExecutor(max_workers=max(len(self.peers), 1))
        self._lock = threading.Lock()
        #: (method, transaction id) of every call, in arrival order.
        self.calls: list[tuple[str, str]] = []
        #: the chaincode function of every Evaluate that parsed, in arrival order.
        self.evaluated: list[str] = []
        #: method -> how many of its next calls fail with UNAVAILABLE (fault injection).
        self.faults: dict[str, int] = {}
        #: the start block of every ChaincodeEvents stream.
        self.event_starts: list[int] = []

    def _arrive(self, method: str, tx_id: str, context: Any) -> None:
        with self._lock:
            self.calls.append((method, tx_id))
            fail = self.faults.get(method, 0)
            if fail:
                self.faults[method] = fail - 1
        if fail:
            _abort(context, grpc.StatusCode.UNAVAILABLE, f"injected fault: {method} unavailable")

    def _parse(self, request: Any, context: Any) -> ParsedProposal:
        signed = request.proposed_transaction
        if not signed.proposal_bytes:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "a signed proposal is required")
        try:
            parsed = parse_proposal(signed)
        except Rejected as exc:
            _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"failed to unpack transaction proposal: {exc}",
            )
        if (
            request.transaction_id != parsed.tx_id
            or request.channel_id != parsed.channel_header.channel_id
        ):
            _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "the request's transaction or channel id differs from the proposal's",
            )
        return parsed

    def _defined(self, parsed: ParsedProposal, context: Any, message: str) -> None:
        """Abort as the real gateway does for a chaincode not defined on the channel."""
        if parsed.chaincode != self.peers[0].chaincode:
            _abort(context, grpc.StatusCode.FAILED_PRECONDITION,
                   message.format(chaincode=parsed.chaincode, channel=self.channel))  # fmt: skip

    def Evaluate(self, request: Any, context: Any) -> Any:
        self._arrive("Evaluate", request.transaction_id, context)
        parsed = self._parse(request, context)
        self._defined(parsed, context, "no peers available to evaluate chaincode {chaincode} in "
                      "channel {channel}")  # fmt: skip
        with self._lock:
            args = parsed.spec.input.args
            self.evaluated.append(bytes(args[0]).decode(errors="replace") if args else "")
        peer = self.peers[0]
        try:
            response = peer.process(request.proposed_transaction)
        except Rejected as exc:
            detail = (peer.address, peer.msp_id, str(exc))
            _abort(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                f"evaluate call to endorser returned error: {exc}",
                [detail],
            )
        result = response.response
        if result.status >= 400:
            message = f"chaincode response {result.status}, {result.message}"
            _abort(
                context,
                grpc.StatusCode.UNKNOWN,
                f"evaluate call to endorser returned error: {message}",
                [(peer.address, peer.msp_id, message)],
            )
        return gateway_pb2.EvaluateResponse(result=result)

    def _endorse_one(self, peer: EndorsingPeer, signed: Any) -> tuple[Any, Detail | None]:
        try:
            response = peer.process(signed)
        except Rejected as exc:
            return None, (peer.address, peer.msp_id, str(exc))
        if response.response.status >= 400:
            text = f"chaincode response {response.response.status}, {response.response.message}"
            return None, (peer.address, peer.msp_id, text)
        return response, None

    def Endorse(self, request: Any, context: Any) -> Any:
        self._arrive("Endorse", request.transaction_id, context)
        parsed = self._parse(request, context)
        self._defined(parsed, context, "no combination of peers can be derived which satisfy the "
                      "endorsement policy: No metadata was found for chaincode {chaincode} in "
                      "channel {channel}")  # fmt: skip
        signed = request.proposed_transaction
        # As Fabric 2.5's gateway: its own peer first; the others only if that one endorsed.
        first = self._endorse_one(self.peers[0], signed)
        results = [first]
        if first[1] is None:
            results += self._pool.map(lambda p: self._endorse_one(p, signed), self.peers[1:])
        details = [d for _, d in results if d is not None]
        if details:
            _abort(
                context,
                grpc.StatusCode.ABORTED,
                "failed to endorse transaction, see attached details for more info",
                details,
            )
        responses = [r for r, _ in results]
        if len({r.payload for r in responses}) != 1:
            _abort(
                context,
                grpc.StatusCode.ABORTED,
                "failed to endorse transaction, see attached details for more info",
                [
                    (p.address, p.msp_id, "ProposalResponsePayloads do not match")
                    for p in self.peers[1:]
                ],
            )
        envelope = _prepare(parsed, responses)
        return gateway_pb2.EndorseResponse(prepared_transaction=envelope)

    def Submit(self, request: Any, context: Any) -> Any:
        self._arrive("Submit", request.transaction_id, context)
        envelope = request.prepared_transaction
        if not envelope.payload:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "a prepared transaction is required")
        if not envelope.signature:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "prepared transaction must be signed")
        if request.channel_id != self.channel:
            _abort(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                f"channel {request.channel_id} not found",
            )
        try:
            self.ledger.broadcast(envelope)
        except Rejected:
            _abort(context, grpc.StatusCode.ABORTED, ORDERER_FORBIDDEN)
        return gateway_pb2.SubmitResponse()

    def _signed_request(self, signed: Any, kind: Any, context: Any) -> Any:
        try:
            request = kind.FromString(signed.request)
        except DecodeError as exc:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"invalid request: {exc}")
        try:
            check_creator(self.consortium, request.identity, signed.request, signed.signature,
                          self.channel)  # fmt: skip
        except Rejected:
            _abort(context, grpc.StatusCode.PERMISSION_DENIED,
                   NOT_A_READER.format(channel=self.channel))  # fmt: skip
        if request.channel_id != self.channel:
            _abort(context, grpc.StatusCode.NOT_FOUND, f"channel {request.channel_id} not found")
        return request

    def _cancelled(self, context: Any) -> Any:
        done = threading.Event()

        def on_done() -> None:
            done.set()
            self.ledger.wake()

        context.add_callback(on_done)
        return done.is_set

    def CommitStatus(self, signed: Any, context: Any) -> Any:
        request = self._signed_request(signed, gateway_pb2.CommitStatusRequest, context)
        self._arrive("CommitStatus", request.transaction_id, context)
        status = self.ledger.wait_status(request.transaction_id, self._cancelled(context))
        if status is None:
            _abort(context, grpc.StatusCode.DEADLINE_EXCEEDED, "commit status wait cancelled")
        code = transaction_pb2.TxValidationCode.Value(status.code)
        return gateway_pb2.CommitStatusResponse(result=code, block_number=status.block)

    def ChaincodeEvents(self, signed: Any, context: Any) -> Iterator[Any]:
        request = self._signed_request(signed, gateway_pb2.ChaincodeEventsRequest, context)
        self._arrive("ChaincodeEvents", "", context)
        cancelled = self._cancelled(context)
        position = request.start_position
        start = (
            position.specified.number if position.HasField("specified") else self.ledger.height()
        )
        self.event_starts.append(start)
        after = request.after_transaction_id
        if after and after in self.ledger.statuses:
            start = self.ledger.statuses[after].block
        passed = not after
        while not cancelled():
            blocks = self.ledger.wait_blocks(start, cancelled)
            for block in blocks:
                events = []
                for event in block.events:
                    if passed and event.chaincode_id == request.chaincode_id:
                        events.append(event)
                    passed = passed or event.tx_id == after
                if events:
                    yield gateway_pb2.ChaincodeEventsResponse(
                        events=events, block_number=block.number
                    )
            start += len(blocks)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _prepare(parsed: ParsedProposal, responses: Sequence[Any]) -> Any:
    """The transaction envelope a gateway assembles from the endorsements (unsigned)."""
    visible = proposal_pb2.ChaincodeProposalPayload(input=parsed.payload.input)
    endorsed = transaction_pb2.ChaincodeEndorsedAction(
        proposal_response_payload=responses[0].payload,
        endorsements=[r.endorsement for r in responses],
    )
    action_payload = transaction_pb2.ChaincodeActionPayload(
        chaincode_proposal_payload=visible.SerializeToString(), action=endorsed
    )
    transaction = transaction_pb2.Transaction(
        actions=[
            transaction_pb2.TransactionAction(
                header=parsed.header.signature_header, payload=action_payload.SerializeToString()
            )
        ]
    )
    payload = common_pb2.Payload(header=parsed.header, data=transaction.SerializeToString())
    return common_pb2.Envelope(payload=payload.SerializeToString())
