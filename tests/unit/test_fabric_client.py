"""The Fabric Gateway client on its own: message layout, signatures, errors, channel ownership.

Errors are produced by a real gRPC server on loopback (a scripted ``GatewayServicer``), so the
status details trailer travels exactly as it does from a Fabric peer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2, gateway_pb2_grpc
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import chaincode_pb2, proposal_pb2

from fedchain.errors import (
    CommitStatusError,
    EndorseError,
    GatewayError,
    IdentityNotFoundError,
    RecordError,
    RuleViolation,
    SignatureError,
    SubmitError,
)
from fedchain.ledger.fabric import connect, from_pki_identity, load_msp_identity
from fedchain.ledger.fabric.client import Commit, Gateway, Transaction
from fedchain.ledger.fabric.proposal import build_proposal, new_context, transaction_id
from fedchain.ledger.fabric.retry import refusal
from fedchain.ledger.fabric.status import DETAILS_KEY, encode_status
from fedchain.pki import Identity, is_low_s, load_identity, verify_signature
from fedchain.pki.signing import P256_ORDER

REFUSAL = ("peer0.org1:7051", "org1", "chaincode response 500, update.duplicate: org2 answered")


@pytest.fixture(scope="module")
def admin(consortium_dir: Path) -> Identity:
    return load_identity(consortium_dir / "org2" / "users" / "admin")


def test_the_transaction_id_derives_from_the_proposal_s_own_nonce_and_creator(
    admin: Identity,
) -> None:
    client, _ = from_pki_identity(admin)
    context = new_context(client.creator, nonce=b"\x07" * 24)
    proposal = proposal_pb2.Proposal.FromString(
        build_proposal(context, channel="ch", chaincode="cc", function="f", now=0.0)
    )
    header = common_pb2.Header.FromString(proposal.header)
    signature_header = common_pb2.SignatureHeader.FromString(header.signature_header)
    channel_header = common_pb2.ChannelHeader.FromString(header.channel_header)
    derived = hashlib.sha256(signature_header.nonce + signature_header.creator).hexdigest()
    assert channel_header.tx_id == derived == context.tx_id
    assert transaction_id(b"a", b"b") == hashlib.sha256(b"ab").hexdigest()
    creator = identities_pb2.SerializedIdentity.FromString(signature_header.creator)
    assert (creator.mspid, creator.id_bytes) == ("org2", admin.cert_pem)


def test_the_proposal_names_channel_chaincode_function_and_arguments(admin: Identity) -> None:
    client, _ = from_pki_identity(admin)
    context = new_context(client.creator)
    raw = build_proposal(
        context, channel="fedchain", chaincode="fedchain", function="metadataGet",
        args=[b"{}", b"\x00\xff"], transient={"secret": b"s"}, now=1700000000.25,
    )  # fmt: skip
    proposal = proposal_pb2.Proposal.FromString(raw)
    header = common_pb2.ChannelHeader.FromString(
        common_pb2.Header.FromString(proposal.header).channel_header
    )
    assert header.type == common_pb2.HeaderType.ENDORSER_TRANSACTION
    assert (header.channel_id, header.epoch) == ("fedchain", 0)
    assert (header.timestamp.seconds, header.timestamp.nanos) == (1700000000, 250_000_000)
    extension = proposal_pb2.ChaincodeHeaderExtension.FromString(header.extension)
    assert extension.chaincode_id.name == "fedchain"
    payload = proposal_pb2.ChaincodeProposalPayload.FromString(proposal.payload)
    spec = chaincode_pb2.ChaincodeInvocationSpec.FromString(payload.input).chaincode_spec
    assert spec.chaincode_id.name == "fedchain"
    assert list(spec.input.args) == [b"metadataGet", b"{}", b"\x00\xff"]
    assert dict(payload.TransientMap) == {"secret": b"s"}


def test_signatures_are_low_s_and_verify_against_the_certificate(admin: Identity) -> None:
    client, signer = from_pki_identity(admin)
    gateway = connect(grpc.insecure_channel("127.0.0.1:9"), client, signer)
    for i in range(64):  # a raw ECDSA signature is high-S half of the time
        message = f"message {i}".encode()
        signature = gateway.signing.sign(message)
        assert is_low_s(signature)
        verify_signature(admin.cert, message, signature)
    r, s = decode_dss_signature(signature)
    with pytest.raises(SignatureError, match="high-S"):
        verify_signature(admin.cert, message, encode_dss_signature(r, P256_ORDER - s))


def test_signer_and_hash_are_plain_functions(admin: Identity) -> None:
    client, _ = from_pki_identity(admin)
    seen: list[bytes] = []

    def hsm(digest: bytes) -> bytes:
        seen.append(digest)
        return b"signed:" + digest

    gateway = connect(grpc.insecure_channel("127.0.0.1:9"), client, hsm, hash=lambda m: m[:4])
    proposal = gateway.network("ch").contract("cc").new_proposal("f", ["x"])
    assert proposal.signed.signature == b"signed:" + proposal.signed.proposal_bytes[:4]
    assert seen == [proposal.signed.proposal_bytes[:4]]


class ScriptedGateway(gateway_pb2_grpc.GatewayServicer):  # type: ignore[misc]
    """Fails each call the way a Fabric gateway does; Evaluate of "ok" succeeds."""

    def Evaluate(self, request: Any, context: Any) -> Any:
        if request.transaction_id and _function(request) == "ok":
            return gateway_pb2.EvaluateResponse(result={"status": 200, "payload": b"fine"})
        message = "evaluate call to endorser returned error: " + REFUSAL[2].replace(
            "update.duplicate", "query.invalid"
        )
        _fail(context, grpc.StatusCode.UNKNOWN, message, [(REFUSAL[0], REFUSAL[1], message)])

    def Endorse(self, request: Any, context: Any) -> Any:
        if _function(request) == "garbled":
            context.set_trailing_metadata([(DETAILS_KEY, b"\xff\x00 not a status")])
            context.abort(grpc.StatusCode.ABORTED, "failed to endorse transaction")
        message = "failed to endorse transaction, see attached details for more info"
        _fail(
            context,
            grpc.StatusCode.ABORTED,
            message,
            [REFUSAL, ("peer0.org2:8051", "org2", "chaincode response 500, record.invalid: bad")],
        )

    def Submit(self, request: Any, context: Any) -> Any:
        _fail(
            context,
            grpc.StatusCode.UNAVAILABLE,
            "no orderers could successfully process transaction",
            [("orderer:7050", "OrdererMSP", "connection refused")],
        )

    def CommitStatus(self, request: Any, context: Any) -> Any:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "access denied")


def _function(request: Any) -> str:
    proposal = proposal_pb2.Proposal.FromString(request.proposed_transaction.proposal_bytes)
    payload = proposal_pb2.ChaincodeProposalPayload.FromString(proposal.payload)
    spec = chaincode_pb2.ChaincodeInvocationSpec.FromString(payload.input).chaincode_spec
    return bytes(spec.input.args[0]).decode()


def _fail(
    context: Any, code: grpc.StatusCode, message: str, details: list[tuple[str, str, str]]
) -> None:
    context.set_trailing_metadata([(DETAILS_KEY, encode_status(code, message, details))])
    context.abort(code, message)


@pytest.fixture(scope="module")
def scripted() -> Iterator[str]:
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    gateway_pb2_grpc.add_GatewayServicer_to_server(ScriptedGateway(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


@pytest.fixture
def gateway(scripted: str, admin: Identity) -> Iterator[Gateway]:
    gateway = connect(scripted, *from_pki_identity(admin))
    yield gateway
    gateway.close()


def test_each_step_has_its_error_type_with_tx_id_and_peer_messages(gateway: Gateway) -> None:
    contract = gateway.network("fedchain").contract("fedchain")
    proposal = contract.new_proposal("metadataPublish", ["[]"])
    with pytest.raises(EndorseError) as endorse:
        proposal.endorse()
    error = endorse.value
    assert (error.tx_id, error.code) == (proposal.tx_id, "ABORTED")
    assert error.details[0] == REFUSAL
    assert "update.duplicate: org2 answered" in str(error)  # shown to the user
    refused = refusal(error)
    assert isinstance(refused, RuleViolation)
    assert (refused.rule, refused.detail) == ("update.duplicate", "org2 answered")
    with pytest.raises(GatewayError) as evaluate:
        contract.evaluate("metadataGet", ["[]"])
    assert type(evaluate.value) is GatewayError
    assert evaluate.value.code == "UNKNOWN"
    assert getattr(refusal(evaluate.value), "rule", None) == "query.invalid"
    assert contract.evaluate("ok") == b"fine"


def test_submit_and_commit_status_errors(gateway: Gateway) -> None:
    network = gateway.network("fedchain")
    transaction = Transaction(network, "tx1", common_pb2.Envelope(payload=b"p", signature=b"s"))
    with pytest.raises(SubmitError) as submit:
        transaction.submit()
    assert (submit.value.tx_id, submit.value.code) == ("tx1", "UNAVAILABLE")
    assert submit.value.details == (("orderer:7050", "OrdererMSP", "connection refused"),)
    with pytest.raises(CommitStatusError) as status:
        Commit(network, "tx1").status()
    assert (status.value.tx_id, status.value.code, status.value.details) == (
        "tx1",
        "PERMISSION_DENIED",
        (),
    )


def test_a_garbled_details_trailer_keeps_the_status(gateway: Gateway) -> None:
    contract = gateway.network("fedchain").contract("fedchain")
    with pytest.raises(EndorseError) as info:
        contract.new_proposal("garbled").endorse()
    assert (info.value.code, info.value.details) == ("ABORTED", ())
    assert refusal(info.value) is None


def test_record_invalid_refusals_are_record_errors() -> None:
    error = EndorseError("x", details=(("a", "m", "chaincode response 500, record.invalid: no"),))
    assert isinstance(refusal(error), RecordError)


def test_a_handed_channel_is_never_closed(scripted: str, admin: Identity) -> None:
    channel = grpc.insecure_channel(scripted)
    try:
        with connect(channel, *from_pki_identity(admin)) as first:
            assert first.network("c").contract("cc").evaluate("ok") == b"fine"
        second = connect(channel, *from_pki_identity(admin))
        assert second.network("c").contract("cc").evaluate("ok") == b"fine"
    finally:
        channel.close()
    owned = connect(scripted, *from_pki_identity(admin))
    owned.close()
    with pytest.raises(ValueError, match="closed"):
        owned.network("c").contract("cc").evaluate("ok")


def _cryptogen_msp(root: Path, identity: Identity, other: Identity) -> Path:
    """An MSP folder named the way cryptogen / Fabric CA name files, with a stray extra key."""
    msp = root / "msp"
    for folder in ("signcerts", "keystore", "cacerts"):
        (msp / folder).mkdir(parents=True)
    (msp / "signcerts" / "User1@org2.example.com-cert.pem").write_bytes(identity.cert_pem)
    (msp / "keystore" / "0a1b2c_sk").write_bytes(other.key_pem())
    (msp / "keystore" / "9f8e7d_sk").write_bytes(identity.key_pem())
    return root


def test_msp_folders_of_cryptogen_and_fabric_ca_load(
    tmp_path: Path, admin: Identity, consortium_dir: Path
) -> None:
    other = load_identity(consortium_dir / "org2" / "users" / "client1")
    folder = _cryptogen_msp(tmp_path / "user1", admin, other)
    client, signer = load_msp_identity(folder, "Org2MSP")
    assert (client.msp_id, client.cert_pem) == ("Org2MSP", admin.cert_pem)
    verify_signature(admin.cert, b"m", signer(hashlib.sha256(b"m").digest()))
    (folder / "msp" / "keystore" / "9f8e7d_sk").unlink()
    with pytest.raises(IdentityNotFoundError, match="matches the certificate"):
        load_msp_identity(folder, "Org2MSP")
    fedchain_client, _ = load_msp_identity(consortium_dir / "org2" / "users" / "admin", "org2")
    assert fedchain_client.cert_pem == admin.cert_pem
