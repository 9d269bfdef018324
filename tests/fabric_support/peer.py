"""An endorsing peer: checks a signed proposal as Fabric does, simulates it, signs the result.

Checks (``ProcessProposal``'s validation): a parseable proposal of type
``ENDORSER_TRANSACTION`` for this channel and chaincode (header extension and invocation spec
agree), a creator whose MSP is known, whose certificate chains to that MSP's CA and passes
Fabric's extended key usage rule (none, serverAuth or anyExtendedKeyUsage), a **low-S** ECDSA
signature by that certificate over the proposal bytes, and a transaction id equal to
``hex(sha256(nonce || creator))``. Refusals use the real peer's messages. The simulation runs
in the real chaincode over the shim; the endorsement is the peer's signature over
``ProposalResponsePayload || endorser``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from fabric_protos.common import common_pb2
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import chaincode_pb2, proposal_pb2, proposal_response_pb2
from google.protobuf.message import DecodeError

from fedchain.errors import CertificateError, PKIError
from fedchain.pki import Consortium, Identity, verify_signature
from tests.fabric_support.shim import ChaincodeStream, ShimError
from tests.fabric_support.state import Simulation, WorldState


class Rejected(Exception):
    """A proposal (or transaction) a peer refuses; the message is what the peer reports."""


@dataclass(frozen=True)
class ParsedProposal:
    """The parts of a signed proposal everyone needs."""

    header: Any  # common.Header
    channel_header: Any  # common.ChannelHeader
    signature_header: Any  # common.SignatureHeader
    payload: Any  # peer.ChaincodeProposalPayload
    spec: Any  # peer.ChaincodeSpec

    @property
    def tx_id(self) -> str:
        return str(self.channel_header.tx_id)

    @property
    def chaincode(self) -> str:
        return str(self.spec.chaincode_id.name)


def parse_proposal(signed: Any) -> ParsedProposal:
    """Unpack a ``SignedProposal``; Rejected if any layer does not parse."""
    try:
        proposal = proposal_pb2.Proposal.FromString(signed.proposal_bytes)
        header = common_pb2.Header.FromString(proposal.header)
        channel_header = common_pb2.ChannelHeader.FromString(header.channel_header)
        signature_header = common_pb2.SignatureHeader.FromString(header.signature_header)
        payload = proposal_pb2.ChaincodeProposalPayload.FromString(proposal.payload)
        spec = chaincode_pb2.ChaincodeInvocationSpec.FromString(payload.input).chaincode_spec
    except DecodeError as exc:
        raise Rejected(f"failed to unpack proposal: {exc}") from exc
    return ParsedProposal(header, channel_header, signature_header, payload, spec)


#: What Fabric 2.5.12 says (checked on a real network) about a creator its channel's MSPs do not
#: accept: an unknown MSP id, a certificate another CA issued, or one Go's ``x509.Verify``
#: refuses for its extended key usage.
MALFORMED = "access denied: channel [{channel}] creator org unknown, creator is malformed"
#: ... and about a known creator whose signature does not verify (a high-S one included).
BAD_SIGNATURE = "access denied: channel [{channel}] creator org [{msp}]"
#: What a real gateway answers a CommitStatus or ChaincodeEvents request that fails that check.
NOT_A_READER = (
    "Failed evaluating policy on signed data during check policy on channel [{channel}] with "
    "policy [/Channel/Application/Readers]: [implicit policy evaluation failed - 0 "
    "sub-policies were satisfied, but this policy requires 1 of the 'Readers' sub-policies to "
    "be satisfied]"
)
_VERIFIABLE_EKUS = {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}


def fabric_accepts_key_usage(cert: x509.Certificate) -> bool:
    """Fabric's MSP rule, Go's ``x509.Verify`` with no key usage named: a certificate with no
    extended key usage extension, or one that lists serverAuth or anyExtendedKeyUsage."""
    try:
        ekus = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return any(oid in _VERIFIABLE_EKUS for oid in ekus)


def check_creator(
    consortium: Consortium, creator: bytes, data: bytes, signature: bytes, channel: str
) -> str:
    """The creator's MSP id, after checking its certificate and its signature over ``data``;
    Rejected with the real peer's words (``MALFORMED``, ``BAD_SIGNATURE``) otherwise."""
    try:
        identity = identities_pb2.SerializedIdentity.FromString(creator)
        cert = x509.load_pem_x509_certificate(identity.id_bytes)
    except (DecodeError, ValueError) as exc:
        raise Rejected(MALFORMED.format(channel=channel)) from exc
    msp_id = str(identity.mspid)
    if msp_id not in consortium.cas or not fabric_accepts_key_usage(cert):
        raise Rejected(MALFORMED.format(channel=channel))
    try:
        issued_by = consortium.org_of(cert)
    except (CertificateError, PKIError) as exc:
        raise Rejected(MALFORMED.format(channel=channel)) from exc
    if issued_by != msp_id:
        raise Rejected(MALFORMED.format(channel=channel))
    try:
        verify_signature(cert, data, signature)
    except (CertificateError, PKIError) as exc:
        raise Rejected(BAD_SIGNATURE.format(channel=channel, msp=msp_id)) from exc
    return msp_id


def proposal_hash(parsed: ParsedProposal) -> bytes:
    """``sha256(channel header || signature header || payload without transient data)``."""
    visible = proposal_pb2.ChaincodeProposalPayload(input=parsed.payload.input)
    digest = hashlib.sha256(parsed.header.channel_header + parsed.header.signature_header)
    digest.update(visible.SerializeToString())
    return digest.digest()


class EndorsingPeer:
    """One organization's peer: its identity, its chaincode stream, the shared world state."""

    def __init__(
        self,
        identity: Identity,
        *,
        address: str,
        consortium: Consortium,
        channel: str,
        chaincode: str,
        state: WorldState,
        chaincode_address: str,
        page_size: int = 100,
    ) -> None:
        self.identity, self.address, self.consortium = identity, address, consortium
        self.msp_id = identity.org
        self.channel, self.chaincode, self.state, self.page_size = (
            channel,
            chaincode,
            state,
            page_size,
        )
        self.endorser = identities_pb2.SerializedIdentity(
            mspid=self.msp_id, id_bytes=identity.cert_pem
        ).SerializeToString()
        self.stream = ChaincodeStream(chaincode_address)

    def validate(self, signed: Any) -> ParsedProposal:
        """All of ProcessProposal's checks; Rejected with the peer's message on failure."""
        parsed = parse_proposal(signed)
        header = parsed.channel_header
        if header.type != common_pb2.HeaderType.ENDORSER_TRANSACTION:
            raise Rejected(f"invalid header type {header.type}")
        if header.channel_id != self.channel:
            raise Rejected(f"channel '{header.channel_id}' not found")
        extension = proposal_pb2.ChaincodeHeaderExtension.FromString(header.extension)
        if extension.chaincode_id.name != parsed.chaincode:
            raise Rejected("the header extension names another chaincode than the invocation")
        if parsed.chaincode != self.chaincode:
            raise Rejected(
                f"make sure the chaincode {parsed.chaincode} has been successfully "
                f"defined on channel {self.channel} and try again"
            )
        creator = parsed.signature_header.creator
        try:
            check_creator(
                self.consortium, creator, signed.proposal_bytes, signed.signature, self.channel
            )
        except Rejected as exc:
            raise Rejected(f"error validating proposal: {exc}") from exc
        expected = hashlib.sha256(parsed.signature_header.nonce + creator).hexdigest()
        if parsed.tx_id != expected:
            raise Rejected(
                f"error validating proposal: incorrectly computed txid '{parsed.tx_id}' -- "
                f"expected '{expected}'"
            )
        return parsed

    def process(self, signed: Any) -> Any:
        """Validate, simulate and endorse: a ``peer.ProposalResponse`` (status 500 on refusal)."""
        parsed = self.validate(signed)
        sim = Simulation(self.state.snapshot(), self.chaincode, self.page_size)
        try:
            outcome = self.stream.execute(
                self.channel, parsed.tx_id, signed, list(parsed.spec.input.args), sim
            )
        except ShimError as exc:
            raise Rejected(f"error in simulation: {exc}") from exc
        response = outcome.response
        if response.status >= 400:
            return proposal_response_pb2.ProposalResponse(version=1, response=response)
        action = proposal_pb2.ChaincodeAction(
            results=sim.rwset(), response=response,
            chaincode_id=chaincode_pb2.ChaincodeID(name=self.chaincode, version="1"),
        )  # fmt: skip
        if outcome.event is not None:
            event = outcome.event
            event.chaincode_id, event.tx_id = self.chaincode, parsed.tx_id
            action.events = event.SerializeToString()
        payload = proposal_response_pb2.ProposalResponsePayload(
            proposal_hash=proposal_hash(parsed), extension=action.SerializeToString()
        ).SerializeToString()
        endorsement = proposal_response_pb2.Endorsement(
            endorser=self.endorser, signature=self.identity.sign(payload + self.endorser)
        )
        return proposal_response_pb2.ProposalResponse(
            version=1, response=response, payload=payload, endorsement=endorsement
        )

    def close(self) -> None:
        self.stream.close()
