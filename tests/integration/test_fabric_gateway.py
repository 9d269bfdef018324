"""The Gateway client on a REAL Fabric network: evaluate and submit, commit status, chaincode
events from a block or after a transaction; and, on the stand-in channel, what only it can
stage: two conflicting transactions cut into one block. What a gateway refuses, and in which
words, is in ``test_fabric_gateway_parity.py`` (on both).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from tests.conformance.ledger_suite import run_record, task_record
from tests.fabric_support.network import gateway_for

from fedchain.errors import CommitError, CommitStatusError
from fedchain.ledger.canonical import loads
from fedchain.ledger.chain import consortium_record
from fedchain.ledger.fabric import Contract, Gateway
from fedchain.ledger.fabric.client import Commit
from fedchain.pki import Consortium

if TYPE_CHECKING:
    from tests.fabric_support.network import StandInNetwork
    from tests.fabric_support.real import RealNetwork

pytest_plugins = ["tests.fabric_support.fixtures", "tests.fabric_support.real"]


@pytest.fixture
def real_org1(real_network: RealNetwork) -> Iterator[tuple[Gateway, str]]:
    """org1's aggregator on its own peer, and a fresh chaincode name (an empty ledger)."""
    gateway = real_network.gateway("org1")
    yield gateway, real_network.namespace()
    gateway.close()


def _publish(contract: Contract, *records: dict[str, object]) -> bytes:
    return contract.submit("metadataPublish", [json.dumps(list(records))])


def _genesis(consortium: Consortium) -> dict[str, object]:
    return dict(consortium_record(consortium).data)


@pytest.mark.fabric
def test_commit_status_of_an_unknown_transaction_times_out(
    real_network: RealNetwork, real_org1: tuple[Gateway, str]
) -> None:
    gateway, _ = real_org1
    with pytest.raises(CommitStatusError) as info:
        Commit(gateway.network(real_network.channel), "00" * 32).status(timeout=0.3)
    assert info.value.code == "DEADLINE_EXCEEDED"


@pytest.mark.fabric
def test_evaluate_does_not_write_and_submit_does(
    real_network: RealNetwork, real_org1: tuple[Gateway, str]
) -> None:
    gateway, namespace = real_org1
    contract = gateway.network(real_network.channel).contract(namespace)
    genesis = _genesis(real_network.consortium())
    published = json.dumps([genesis])
    assert loads(contract.evaluate("metadataPublish", [published]))["txId"]
    assert loads(contract.evaluate("metadataGet", ["{}"])) == []
    result = loads(_publish(contract, genesis))
    (entry,) = loads(contract.evaluate("metadataGet", ["{}"]))
    assert entry["txId"] == result["txId"]


@pytest.mark.fabric
def test_chaincode_events_from_a_block_or_after_a_transaction(
    real_network: RealNetwork, real_org1: tuple[Gateway, str]
) -> None:
    gateway, namespace = real_org1
    network = gateway.network(real_network.channel)
    contract = network.contract(namespace)
    tx_ids = [
        loads(_publish(contract, record))["txId"]
        for record in (_genesis(real_network.consortium()), run_record("r1"), run_record("r2"))
    ]
    with network.chaincode_events(namespace, start_block=0) as events:
        stream = iter(events)
        seen = [next(stream) for _ in range(3)]  # only this chaincode's, from the channel's start
    assert [e.tx_id for e in seen] == tx_ids
    blocks = [e.block_number for e in seen]
    assert blocks == sorted(set(blocks))  # one transaction per block, in order
    assert blocks[0] >= 1
    assert {e.name for e in seen} == {"fedchain.records"}
    assert json.loads(seen[1].payload)[0]["run"] == "r1"
    with network.chaincode_events(namespace, start_block=0, after_tx_id=tx_ids[0]) as events:
        stream = iter(events)
        assert [next(stream).tx_id for _ in range(2)] == tx_ids[1:]


# -- only the stand-in can cut two chosen transactions into one block ----------------------


def test_conflicting_transactions_in_one_block_fail_to_commit(
    make_network: Callable[..., StandInNetwork], consortium_dir: Path, consortium: Consortium
) -> None:
    network = make_network(batch_size=2)
    gateway = gateway_for(network, consortium_dir, "org1")
    try:
        contract = gateway.network("fedchain").contract("fedchain")
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
