"""The Gateway client against the stand-in channel and the REAL chaincode process.

These pin down what a Fabric peer and gateway refuse (so the stand-in is an honest judge of
the client) and the client-level outcomes the ledger builds on: commit errors, commit status
timeouts, and chaincode events with a start block or after a transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from fabric_protos.peer import proposal_pb2
from tests.conformance.ledger_suite import run_record, task_record
from tests.fabric_support.network import gateway_for

from fedchain.errors import CommitError, CommitStatusError, EndorseError, SubmitError
from fedchain.ledger.canonical import loads
from fedchain.ledger.chain import consortium_record
from fedchain.ledger.fabric import Contract, Gateway, Signer
from fedchain.ledger.fabric.client import Commit, Proposal
from fedchain.ledger.fabric.proposal import TransactionContext, build_proposal
from fedchain.pki import Consortium
from fedchain.pki.signing import P256_ORDER

if TYPE_CHECKING:
    from tests.fabric_support.network import StandInNetwork

pytest_plugins = ["tests.fabric_support.fixtures"]

Connect = Callable[..., Gateway]


@pytest.fixture
def gateways(fabric_network: StandInNetwork, consortium_dir: Path) -> Iterator[Connect]:
    """``gateways(org="org1", signer=None)``: connections to the stand-in, closed afterwards."""
    opened: list[Gateway] = []

    def open_(org: str = "org1", signer: Signer | None = None) -> Gateway:
        opened.append(gateway_for(fabric_network, consortium_dir, org, signer))
        return opened[-1]

    yield open_
    for gateway in opened:
        gateway.close()


def _contract(gateway: Gateway) -> Contract:
    return gateway.network("fedchain").contract("fedchain")


def _publish(contract: Contract, *records: dict[str, object]) -> bytes:
    return contract.submit("metadataPublish", [json.dumps(list(records))])


def _genesis(consortium: Consortium) -> dict[str, object]:
    return dict(consortium_record(consortium).data)


def test_high_s_signatures_are_refused_by_the_peers(gateways: Connect) -> None:
    def high_s(signer: Signer) -> Signer:
        def sign(digest: bytes) -> bytes:
            r, s = decode_dss_signature(signer(digest))
            return encode_dss_signature(r, P256_ORDER - s)

        return sign

    low = gateways()
    gateway = gateways(signer=high_s(low.signing.signer))
    with pytest.raises(EndorseError) as info:
        _contract(gateway).new_proposal("metadataGet", ["{}"]).endorse()
    assert all("high-S" in message for _, _, message in info.value.details)
    assert len(info.value.details) == 2  # both endorsing peers refused


def test_a_transaction_id_not_derived_from_nonce_and_creator_is_refused(
    gateways: Connect,
) -> None:
    gateway = gateways()
    context = TransactionContext(nonce=b"\x01" * 24, creator=gateway.creator, tx_id="ab" * 32)
    raw = build_proposal(context, channel="fedchain", chaincode="fedchain", function="metadataGet")
    signed = proposal_pb2.SignedProposal(proposal_bytes=raw, signature=gateway.signing.sign(raw))
    proposal = Proposal(gateway.network("fedchain"), context.tx_id, signed)
    with pytest.raises(EndorseError) as info:
        proposal.endorse()
    assert "incorrectly formed transaction id" in info.value.details[0][2]


def test_unknown_msps_and_unknown_chaincodes_are_refused(gateways: Connect) -> None:
    gateway = gateways()
    stranger = Gateway(
        gateway.channel, replace(gateway.signing, identity=replace(gateway.identity, msp_id="x9"))
    )
    with pytest.raises(EndorseError, match="not a member"):
        _contract(stranger).new_proposal("metadataGet", ["{}"]).endorse()
    other = gateway.network("fedchain").contract("not-deployed")
    with pytest.raises(EndorseError, match="not-deployed"):
        other.new_proposal("metadataGet", ["{}"]).endorse()


def test_an_envelope_signed_by_someone_else_is_not_ordered(
    gateways: Connect, consortium: Consortium
) -> None:
    org1, org2 = gateways("org1"), gateways("org2")
    transaction = (
        _contract(org1)
        .new_proposal("metadataPublish", [json.dumps([_genesis(consortium)])])
        .endorse()
    )
    transaction.envelope.signature = org2.signing.sign(transaction.envelope.payload)
    with pytest.raises(SubmitError) as info:
        transaction.submit()
    assert info.value.code == "ABORTED"
    assert info.value.tx_id == transaction.tx_id


def test_commit_status_of_an_unknown_transaction_times_out(gateways: Connect) -> None:
    with pytest.raises(CommitStatusError) as info:
        Commit(gateways().network("fedchain"), "00" * 32).status(timeout=0.3)
    assert info.value.code == "DEADLINE_EXCEEDED"


def test_conflicting_transactions_in_one_block_fail_to_commit(
    make_network: Callable[..., StandInNetwork], consortium_dir: Path, consortium: Consortium
) -> None:
    network = make_network(batch_size=2)
    gateway = gateway_for(network, consortium_dir, "org1")
    try:
        contract = _contract(gateway)
        _publish(contract, _genesis(consortium), run_record())
        network.ledger.batch_timeout = 10.0  # the next block is cut when both have arrived

        def publish(task: str) -> BaseException | None:
            try:
                _publish(contract, task_record(task, 1))
            except CommitError as exc:
                return exc
            return None

        with ThreadPoolExecutor(2) as pool:
            outcomes = list(pool.map(publish, ["t1", "t2"]))
    finally:
        gateway.close()
    (failure,) = [o for o in outcomes if o is not None]
    assert isinstance(failure, CommitError)
    assert failure.validation_code == "MVCC_READ_CONFLICT"


def test_evaluate_does_not_write_and_submit_does(gateways: Connect, consortium: Consortium) -> None:
    contract = _contract(gateways())
    published = json.dumps([_genesis(consortium)])
    assert loads(contract.evaluate("metadataPublish", [published]))["txId"]
    assert loads(contract.evaluate("metadataGet", ["{}"])) == []
    result = loads(_publish(contract, _genesis(consortium)))
    (entry,) = loads(contract.evaluate("metadataGet", ["{}"]))
    assert entry["txId"] == result["txId"]


def test_chaincode_events_from_a_block_or_after_a_transaction(
    gateways: Connect, consortium: Consortium
) -> None:
    gateway = gateways()
    contract = _contract(gateway)
    tx_ids = [
        loads(_publish(contract, record))["txId"]
        for record in (_genesis(consortium), run_record("r1"), run_record("r2"))
    ]
    network = gateway.network("fedchain")
    with network.chaincode_events("fedchain", start_block=0) as events:
        seen = [next(iter_) for iter_ in [iter(events)] for _ in range(3)]
    assert [e.tx_id for e in seen] == tx_ids
    assert [e.block_number for e in seen] == [1, 2, 3]
    assert {e.name for e in seen} == {"fedchain.records"}
    assert json.loads(seen[1].payload)[0]["run"] == "r1"
    with network.chaincode_events("fedchain", start_block=0, after_tx_id=tx_ids[0]) as events:
        stream = iter(events)
        assert [next(stream).tx_id for _ in range(2)] == tx_ids[1:]
