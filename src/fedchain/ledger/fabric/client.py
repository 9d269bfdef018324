"""A small Fabric Gateway client: connect → network → contract → evaluate / submit.

Shaped like hyperledger/fabric-gateway's Go and Node clients::

    gateway = connect("peer0.org1:7051", identity, signer, tls_ca=ca_pem)
    contract = gateway.network("fedchain").contract("fedchain")
    contract.evaluate("metadataGet", ["{}"])             # one endorser, no ledger write
    contract.submit("metadataPublish", [records_json])   # endorse → sign → submit → status

``submit`` is also available step by step (``new_proposal`` → ``endorse`` → ``submit`` →
``status``) so a caller can retry one step with the same transaction id. Each step has its
own timeout and its own error type (:class:`~fedchain.errors.EndorseError`,
``SubmitError``, ``CommitStatusError``, ``CommitError``), each carrying the transaction id and
the peers' messages. A gRPC channel passed to :func:`connect` belongs to the caller and is never
closed here; one created from an endpoint string is closed by :meth:`Gateway.close`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from fabric_protos.gateway import gateway_pb2, gateway_pb2_grpc
from fabric_protos.peer import proposal_pb2, transaction_pb2

from fedchain.errors import (
    CommitError,
    CommitStatusError,
    EndorseError,
    GatewayError,
    SubmitError,
)
from fedchain.ledger.fabric import proposal as msgs
from fedchain.ledger.fabric.events import ChaincodeEvents
from fedchain.ledger.fabric.identity import ClientIdentity, Hash, Signer, SigningIdentity, sha256
from fedchain.ledger.fabric.status import error_details, status_code_name

__all__ = [
    "Commit",
    "CommitStatus",
    "Contract",
    "Gateway",
    "Network",
    "Proposal",
    "Timeouts",
    "Transaction",
    "connect",
    "open_channel",
]

Arg = str | bytes
_E = TypeVar("_E", bound=GatewayError)
_MAX_MESSAGE = 64 * 1024 * 1024


@dataclass(frozen=True)
class Timeouts:
    """Deadline of each Gateway call, in seconds."""

    evaluate: float = 30.0
    endorse: float = 30.0
    submit: float = 30.0
    commit_status: float = 60.0


def _call(error: type[_E], what: str, tx_id: str, fn: Callable[[], Any]) -> Any:
    """Run one gRPC call, translating its failure into ``error`` with the peers' details."""
    try:
        return fn()
    except grpc.RpcError as exc:
        code = status_code_name(exc)
        text = exc.details() if isinstance(exc, grpc.Call) else str(exc)
        raise error(
            f"{what} failed ({code}): {text}", tx_id=tx_id, code=code, details=error_details(exc)
        ) from exc


def _as_bytes(args: Sequence[Arg]) -> list[bytes]:
    return [a.encode() if isinstance(a, str) else bytes(a) for a in args]


@dataclass(frozen=True)
class CommitStatus:
    """How a transaction committed: validation ``code`` name and ``block_number``."""

    tx_id: str
    code: str
    block_number: int

    @property
    def successful(self) -> bool:
        return self.code == "VALID"


@dataclass
class Commit:
    """A submitted transaction whose commit status can be awaited (again, if need be)."""

    network: Network
    tx_id: str

    def status(self, timeout: float | None = None) -> CommitStatus:
        """Block until the transaction commits; raise CommitStatusError if that cannot be told."""
        gateway = self.network.gateway
        request = msgs.commit_status_request(self.network.name, self.tx_id, gateway.creator)
        signed = gateway_pb2.SignedCommitStatusRequest(
            request=request, signature=gateway.signing.sign(request)
        )
        deadline = gateway.timeouts.commit_status if timeout is None else timeout
        response = _call(
            CommitStatusError, "commit status", self.tx_id,
            lambda: gateway.stub.CommitStatus(signed, timeout=deadline),
        )  # fmt: skip
        code = transaction_pb2.TxValidationCode.Name(response.result)
        return CommitStatus(self.tx_id, code, int(response.block_number))


@dataclass
class Transaction:
    """An endorsed, signed transaction ready for ordering; ``result`` is the chaincode's."""

    network: Network
    tx_id: str
    envelope: Any = field(repr=False)

    @property
    def result(self) -> bytes:
        return msgs.transaction_result(self.envelope, self.tx_id)

    def submit(self, timeout: float | None = None) -> Commit:
        """Send the transaction to the ordering service (safe to repeat: same tx id)."""
        gateway = self.network.gateway
        request = gateway_pb2.SubmitRequest(
            transaction_id=self.tx_id, channel_id=self.network.name,
            prepared_transaction=self.envelope,
        )  # fmt: skip
        deadline = gateway.timeouts.submit if timeout is None else timeout
        _call(SubmitError, "submit", self.tx_id,
              lambda: gateway.stub.Submit(request, timeout=deadline))  # fmt: skip
        return Commit(self.network, self.tx_id)


@dataclass
class Proposal:
    """A signed proposal: evaluate it, or endorse it into a :class:`Transaction`."""

    network: Network
    tx_id: str
    signed: Any = field(repr=False)

    def evaluate(self, timeout: float | None = None) -> bytes:
        """Run the function on one peer without writing; return its result."""
        gateway = self.network.gateway
        request = gateway_pb2.EvaluateRequest(
            transaction_id=self.tx_id, channel_id=self.network.name,
            proposed_transaction=self.signed,
        )  # fmt: skip
        deadline = gateway.timeouts.evaluate if timeout is None else timeout
        response = _call(GatewayError, "evaluate", self.tx_id,
                         lambda: gateway.stub.Evaluate(request, timeout=deadline))  # fmt: skip
        result: bytes = response.result.payload
        return result

    def endorse(self, timeout: float | None = None) -> Transaction:
        """Collect endorsements; the gateway returns the assembled transaction, signed here."""
        gateway = self.network.gateway
        request = gateway_pb2.EndorseRequest(
            transaction_id=self.tx_id, channel_id=self.network.name,
            proposed_transaction=self.signed,
        )  # fmt: skip
        deadline = gateway.timeouts.endorse if timeout is None else timeout
        response = _call(EndorseError, "endorse", self.tx_id,
                         lambda: gateway.stub.Endorse(request, timeout=deadline))  # fmt: skip
        envelope = response.prepared_transaction
        envelope.signature = gateway.signing.sign(envelope.payload)
        return Transaction(self.network, self.tx_id, envelope)


@dataclass
class Contract:
    """One chaincode on one channel."""

    network: Network
    name: str

    def new_proposal(
        self,
        function: str,
        args: Sequence[Arg] = (),
        *,
        transient: Mapping[str, bytes] | None = None,
    ) -> Proposal:
        """Build and sign a proposal for ``function(*args)`` (a fresh nonce and tx id)."""
        gateway = self.network.gateway
        context = msgs.new_context(gateway.creator, gateway.nonce())
        proposal_bytes = msgs.build_proposal(
            context, channel=self.network.name, chaincode=self.name, function=function,
            args=_as_bytes(args), transient=transient, now=gateway.clock(),
        )  # fmt: skip
        signed = proposal_pb2.SignedProposal(
            proposal_bytes=proposal_bytes, signature=gateway.signing.sign(proposal_bytes)
        )
        return Proposal(self.network, context.tx_id, signed)

    def evaluate(self, function: str, args: Sequence[Arg] = (), **options: Any) -> bytes:
        """Evaluate ``function(*args)`` and return its result."""
        return self.new_proposal(function, args, **options).evaluate()

    def submit(self, function: str, args: Sequence[Arg] = (), **options: Any) -> bytes:
        """Endorse, submit and wait for the commit; raise CommitError if it is invalidated."""
        transaction = self.new_proposal(function, args, **options).endorse()
        status = transaction.submit().status()
        if not status.successful:
            raise CommitError(
                f"transaction {status.tx_id} failed to commit: {status.code}",
                tx_id=status.tx_id, validation_code=status.code,
            )  # fmt: skip
        return transaction.result


@dataclass
class Network:
    """One channel seen through a gateway."""

    gateway: Gateway
    name: str

    def contract(self, chaincode: str) -> Contract:
        return Contract(self, chaincode)

    def chaincode_events(
        self, chaincode: str, *, start_block: int | None = None, after_tx_id: str | None = None
    ) -> ChaincodeEvents:
        """Follow ``chaincode``'s events from ``start_block`` (default: the next commit)."""
        gateway = self.gateway
        request = msgs.chaincode_events_request(
            self.name, chaincode, gateway.creator, start_block=start_block, after_tx_id=after_tx_id
        )
        signed = gateway_pb2.SignedChaincodeEventsRequest(
            request=request, signature=gateway.signing.sign(request)
        )
        return ChaincodeEvents(gateway.stub.ChaincodeEvents(signed))


class Gateway:
    """A connection to a Fabric Gateway peer, used with one signing identity."""

    def __init__(
        self,
        channel: grpc.Channel,
        signing: SigningIdentity,
        *,
        owns_channel: bool = False,
        timeouts: Timeouts | None = None,
        nonce: Callable[[], bytes] | None = None,
        clock: Callable[[], float] = time.time,
        endpoint: str = "",
    ) -> None:
        self.channel = channel
        self.endpoint = endpoint  # "host:port" when connect() made the channel, for messages
        self.signing = signing
        self.creator = signing.creator
        self.stub = gateway_pb2_grpc.GatewayStub(channel)
        self.timeouts = timeouts or Timeouts()
        self.nonce = nonce or (lambda: secrets.token_bytes(msgs.NONCE_BYTES))
        self.clock = clock
        self._owns_channel = owns_channel

    @property
    def identity(self) -> ClientIdentity:
        return self.signing.identity

    def network(self, name: str) -> Network:
        return Network(self, name)

    def close(self) -> None:
        """Close the gRPC channel if :func:`connect` created it; a handed channel stays open."""
        if self._owns_channel:
            self.channel.close()

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def connect(
    target: str | grpc.Channel,
    identity: ClientIdentity,
    signer: Signer,
    *,
    hash: Hash = sha256,
    tls_ca: bytes | None = None,
    tls_client: tuple[bytes, bytes] | None = None,
    server_name: str | None = None,
    timeouts: Timeouts | None = None,
    nonce: Callable[[], bytes] | None = None,
    clock: Callable[[], float] = time.time,
) -> Gateway:
    """Connect to a gateway at ``host:port`` (TLS when ``tls_ca`` is given) or over ``target``.

    ``tls_client`` is an optional ``(cert_pem, key_pem)`` for peers that require client TLS
    certificates; ``server_name`` overrides the name checked against the peer's certificate.
    """
    signing = SigningIdentity(identity, signer, hash)
    if not isinstance(target, str):
        return Gateway(target, signing, timeouts=timeouts, nonce=nonce, clock=clock)
    channel = open_channel(target, tls_ca=tls_ca, tls_client=tls_client, server_name=server_name)
    return Gateway(
        channel, signing, owns_channel=True, timeouts=timeouts, nonce=nonce, clock=clock,
        endpoint=target,
    )  # fmt: skip


def open_channel(
    target: str,
    *,
    tls_ca: bytes | None = None,
    tls_client: tuple[bytes, bytes] | None = None,
    server_name: str | None = None,
) -> grpc.Channel:
    """The gRPC channel :func:`connect` uses for ``host:port`` (the caller closes it)."""
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", _MAX_MESSAGE),
        ("grpc.max_send_message_length", _MAX_MESSAGE),
        # Notice a dead event stream; peers refuse pings more often than every 60 s by default.
        ("grpc.keepalive_time_ms", 120_000),
        ("grpc.keepalive_timeout_ms", 20_000),
    ]
    if tls_ca is None:
        return grpc.insecure_channel(target, options=options)
    key, cert = (tls_client[1], tls_client[0]) if tls_client else (None, None)
    credentials = grpc.ssl_channel_credentials(tls_ca, key, cert)
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return grpc.secure_channel(target, credentials, options=options)
