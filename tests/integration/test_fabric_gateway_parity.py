"""What a Fabric gateway refuses, and in which words: the stand-in must say exactly what a real
Fabric 2.5.12 gateway says, so each test runs on both (``target`` is ``stand-in`` or ``real``)
and expects the real network's gRPC status and messages, as found on it.

The stand-in (``tests/fabric_support``) judges the tests that only it can stage (held block
delivery, MVCC races, injected faults); a refusal it missed or worded differently would let
the client pass there and fail on Fabric. Among them: Fabric's certificate rule (Go's
``x509.Verify``: a certificate with an extended key usage lacking serverAuth and
anyExtendedKeyUsage is refused), which the stand-in once did not apply.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.x509.oid import ExtendedKeyUsageOID
from fabric_protos.peer import proposal_pb2
from tests.conformance.ledger_suite import run_record
from tests.fabric_support.network import user_dir

from fedchain.errors import GatewayError
from fedchain.ledger.chain import consortium_record
from fedchain.ledger.fabric import Gateway, Signer, connect, from_pki_identity
from fedchain.ledger.fabric.client import Commit, Proposal
from fedchain.ledger.fabric.proposal import TransactionContext, build_proposal, transaction_id
from fedchain.pki import Identity, load_ca, load_consortium, load_identity
from fedchain.pki.signing import P256_ORDER

if TYPE_CHECKING:
    from tests.fabric_support.network import StandInNetwork
    from tests.fabric_support.real import RealNetwork

pytest_plugins = ["tests.fabric_support.fixtures", "tests.fabric_support.real"]

# The real gateway's words (Fabric 2.5.12), {channel} filled in.
ENDORSE_FAILED = "failed to endorse transaction, see attached details for more info"
EVALUATE_FAILED = "evaluate call to endorser returned error: {}"
MALFORMED = ("error validating proposal: access denied: channel [{channel}] creator org unknown, "
             "creator is malformed")  # fmt: skip
BAD_SIGNATURE = "error validating proposal: access denied: channel [{channel}] creator org [{msp}]"
NOT_A_READER = (
    "Failed evaluating policy on signed data during check policy on channel [{channel}] with "
    "policy [/Channel/Application/Readers]: [implicit policy evaluation failed - 0 "
    "sub-policies were satisfied, but this policy requires 1 of the 'Readers' sub-policies to "
    "be satisfied]"
)
ORDERER_FORBIDDEN = (
    "received unsuccessful response from orderer: status=FORBIDDEN, info=implicit policy "
    "evaluation failed - 0 sub-policies were satisfied, but this policy requires 1 of the "
    "'Writers' sub-policies to be satisfied: permission denied"
)


@dataclass
class Target:
    """A channel with an empty fedchain ledger, on the stand-in or the real network."""

    name: str
    channel: str
    chaincode: str
    pki: Path
    _connect: Callable[[str, Identity, Signer | None], Gateway]
    opened: list[Gateway]

    def identity(self, org: str) -> Identity:
        """The identity ``org`` writes with (the aggregator's for org1), on either network."""
        return load_identity(user_dir(self.pki, org))

    def gateway(self, org: str, identity: Identity | None = None,
                signer: Signer | None = None) -> Gateway:  # fmt: skip
        self.opened.append(self._connect(org, identity or self.identity(org), signer))
        return self.opened[-1]


@pytest.fixture(params=["stand-in", pytest.param("real", marks=pytest.mark.fabric)])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    opened: list[Gateway] = []
    if request.param == "stand-in":
        network: StandInNetwork = request.getfixturevalue("fabric_network")
        pki: Path = request.getfixturevalue("consortium_dir")

        def standin(org: str, identity: Identity, signer: Signer | None) -> Gateway:
            client, own = from_pki_identity(identity)
            return connect(network.endpoints.get(org, network.endpoint), client, signer or own,
                           tls_ca=network.tls_cas.get(org, network.tls_ca))  # fmt: skip

        yield Target("stand-in", network.channel, network.chaincode, pki, standin, opened)
    else:
        real: RealNetwork = request.getfixturevalue("real_network")

        def on_real(org: str, identity: Identity, signer: Signer | None) -> Gateway:
            return real.gateway(org, signer=signer, identity=identity)

        yield Target("real", real.channel, real.namespace(), real.pki, on_real, opened)
    for gateway in opened:
        gateway.close()


def said(exc: GatewayError) -> tuple[str | None, str, list[str]]:
    """(gRPC status, the gateway's message, the peers' messages) of a failed call."""
    return exc.code, exc.detail.split("): ", 1)[1], [m for _, _, m in exc.details]


def with_eku(identity: Identity, pki: Path, usages: list[x509.ObjectIdentifier]) -> Identity:
    """``identity``'s subject and key in a certificate its CA issues with these EKUs."""
    ca_cert, ca_key = load_ca(pki, identity.org)
    now = datetime.now(UTC)
    builder = (x509.CertificateBuilder().subject_name(identity.cert.subject)
               .issuer_name(ca_cert.subject).public_key(identity.cert.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(minutes=5))
               .not_valid_after(now + timedelta(days=1)))  # fmt: skip
    for ext in identity.cert.extensions:
        if not isinstance(ext.value, x509.ExtendedKeyUsage):
            builder = builder.add_extension(ext.value, ext.critical)
    builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return replace(identity, cert=builder.sign(ca_key, hashes.SHA256()))


REFUSED_EKUS = {
    "clientAuth": [ExtendedKeyUsageOID.CLIENT_AUTH],
    "codeSigning": [ExtendedKeyUsageOID.CODE_SIGNING],
}
ACCEPTED_EKUS = {
    "serverAuth+clientAuth": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
    "anyExtendedKeyUsage": [ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE],
}


@pytest.mark.parametrize("usage", REFUSED_EKUS)
def test_a_certificate_whose_eku_go_refuses_is_a_malformed_creator(
    target: Target, usage: str
) -> None:
    identity = with_eku(target.identity("org2"), target.pki, REFUSED_EKUS[usage])
    network = target.gateway("org2", identity).network(target.channel)
    contract = network.contract(target.chaincode)
    malformed = MALFORMED.format(channel=target.channel)
    with pytest.raises(GatewayError) as info:
        contract.evaluate("metadataGet", ["{}"])
    assert said(info.value) == ("FAILED_PRECONDITION", EVALUATE_FAILED.format(malformed),
                                [malformed])  # fmt: skip
    with pytest.raises(GatewayError) as info:
        contract.new_proposal("metadataGet", ["{}"]).endorse()
    assert said(info.value) == ("ABORTED", ENDORSE_FAILED, [malformed])
    not_a_reader = NOT_A_READER.format(channel=target.channel)
    with pytest.raises(GatewayError) as info:
        next(iter(network.chaincode_events(target.chaincode, start_block=0)))
    assert said(info.value) == ("PERMISSION_DENIED", not_a_reader, [])
    with pytest.raises(GatewayError) as info:
        Commit(network, "00" * 32).status(timeout=5)
    assert said(info.value) == ("PERMISSION_DENIED", not_a_reader, [])


@pytest.mark.parametrize("usage", ACCEPTED_EKUS)
def test_a_certificate_with_server_auth_or_any_eku_is_accepted(target: Target, usage: str) -> None:
    identity = with_eku(target.identity("org2"), target.pki, ACCEPTED_EKUS[usage])
    contract = target.gateway("org2", identity).network(target.channel).contract(target.chaincode)
    assert json.loads(contract.evaluate("metadataGet", ["{}"])) == []


def test_unknown_msps_and_certificates_of_another_ca_are_malformed_creators(
    target: Target,
) -> None:
    malformed = MALFORMED.format(channel=target.channel)
    org2 = target.identity("org2")
    for msp_id, identity in [("x9", org2), ("org3", org2)]:  # org3 did not issue org2's cert
        gateway = target.gateway("org2", identity)
        stranger = Gateway(gateway.channel, replace(
            gateway.signing, identity=replace(gateway.identity, msp_id=msp_id)))  # fmt: skip
        contract = stranger.network(target.channel).contract(target.chaincode)
        with pytest.raises(GatewayError) as info:
            contract.new_proposal("metadataGet", ["{}"]).endorse()
        assert said(info.value) == ("ABORTED", ENDORSE_FAILED, [malformed])


def test_high_s_signatures_are_refused_as_a_bad_creator_signature(target: Target) -> None:
    def high_s(signer: Signer) -> Signer:
        def sign(digest: bytes) -> bytes:
            r, s = decode_dss_signature(signer(digest))
            return encode_dss_signature(r, P256_ORDER - s)

        return sign

    low = target.gateway("org2")
    gateway = target.gateway("org2", signer=high_s(low.signing.signer))
    contract = gateway.network(target.channel).contract(target.chaincode)
    refused = BAD_SIGNATURE.format(channel=target.channel, msp="org2")
    with pytest.raises(GatewayError) as info:
        contract.new_proposal("metadataGet", ["{}"]).endorse()
    assert said(info.value) == ("ABORTED", ENDORSE_FAILED, [refused])
    with pytest.raises(GatewayError) as info:
        contract.evaluate("metadataGet", ["{}"])
    assert said(info.value) == ("FAILED_PRECONDITION", EVALUATE_FAILED.format(refused), [refused])


def test_a_transaction_id_not_derived_from_nonce_and_creator_is_refused(target: Target) -> None:
    gateway = target.gateway("org2")
    context = TransactionContext(nonce=b"\x01" * 24, creator=gateway.creator, tx_id="ab" * 32)
    raw = build_proposal(context, channel=target.channel, chaincode=target.chaincode,
                         function="metadataGet")  # fmt: skip
    signed = proposal_pb2.SignedProposal(proposal_bytes=raw, signature=gateway.signing.sign(raw))
    proposal = Proposal(gateway.network(target.channel), context.tx_id, signed)
    with pytest.raises(GatewayError) as info:
        proposal.endorse()
    expected = transaction_id(context.nonce, gateway.creator)
    assert said(info.value) == ("ABORTED", ENDORSE_FAILED, [
        f"error validating proposal: incorrectly computed txid '{'ab' * 32}' -- expected "
        f"'{expected}'"])  # fmt: skip


def test_a_chaincode_not_defined_on_the_channel_is_refused_by_the_gateway(
    target: Target,
) -> None:
    contract = target.gateway("org2").network(target.channel).contract("not-deployed")
    with pytest.raises(GatewayError) as info:
        contract.new_proposal("metadataGet", ["{}"]).endorse()
    no_metadata = ("no combination of peers can be derived which satisfy the endorsement "
                   f"policy: No metadata was found for chaincode not-deployed in channel "
                   f"{target.channel}")  # fmt: skip
    assert said(info.value) == ("FAILED_PRECONDITION", no_metadata, [])
    with pytest.raises(GatewayError) as info:
        contract.evaluate("metadataGet", ["{}"])
    assert said(info.value) == ("FAILED_PRECONDITION", "no peers available to evaluate chaincode "
                                f"not-deployed in channel {target.channel}", [])  # fmt: skip


def test_chaincode_refusals_reach_the_client_in_the_peers_words(target: Target) -> None:
    contract = target.gateway("org2").network(target.channel).contract(target.chaincode)
    record = json.dumps([{**run_record("rX"), "org": "org2"}])
    refused = "chaincode response 500, consortium.first: the first record must be the consortium"
    with pytest.raises(GatewayError) as info:
        contract.new_proposal("metadataPublish", [record]).endorse()
    assert said(info.value) == ("ABORTED", ENDORSE_FAILED, [refused])
    with pytest.raises(GatewayError) as info:
        contract.evaluate("metadataPublish", [record])
    assert said(info.value) == ("UNKNOWN", EVALUATE_FAILED.format(refused), [refused])
    missing = "chaincode response 500, You've asked to invoke a function that does not exist: nope"
    with pytest.raises(GatewayError) as info:
        contract.evaluate("nope", [])
    assert said(info.value) == ("UNKNOWN", EVALUATE_FAILED.format(missing), [missing])


def test_an_envelope_signed_by_someone_else_is_forbidden_by_the_orderer(target: Target) -> None:
    org1, org2 = target.gateway("org1"), target.gateway("org2")
    genesis = dict(consortium_record(load_consortium(target.pki)).data)
    transaction = (org1.network(target.channel).contract(target.chaincode)
                   .new_proposal("metadataPublish", [json.dumps([genesis])]).endorse())  # fmt: skip
    transaction.envelope.signature = org2.signing.sign(transaction.envelope.payload)
    with pytest.raises(GatewayError) as info:
        transaction.submit()
    assert said(info.value) == ("ABORTED", ORDERER_FORBIDDEN, [])
    assert info.value.tx_id == transaction.tx_id
