"""pytest fixtures for the stand-in Fabric network; import them into a test module to use them.

``chaincode_service`` (session): the real chaincode process (built first if it is not and npm
is here), or a skip with the reason when ``node`` is missing or the build failed (a failure
with ``FEDCHAIN_REQUIRE_CHAINCODE=1``).
``make_network`` / ``fabric_network``: fresh channels (empty world state) per test.
``open_fabric``: ``FabricLedger`` handles as an org's identity, closed after the test.
``genesis_record``: the consortium record. Use them with
``pytest_plugins = ["tests.fabric_support.fixtures"]`` in a test module.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fedchain.ledger import Record
from fedchain.ledger.chain import consortium_record
from fedchain.ledger.fabric import FabricLedger
from fedchain.ledger.fabric.retry import Backoff
from fedchain.pki import Consortium
from tests.fabric_support.chaincode import ChaincodeProcess, build_if_needed, unavailable_reason
from tests.fabric_support.network import StandInNetwork, gateway_for

OpenFabric = Callable[..., FabricLedger]
FAST = Backoff(attempts=4, initial=0.01, factor=2.0, maximum=0.05)


@pytest.fixture(scope="session")
def chaincode_service() -> Iterator[ChaincodeProcess]:
    reason = build_if_needed() or unavailable_reason()
    if reason is not None and os.environ.get("FEDCHAIN_REQUIRE_CHAINCODE") == "1":
        pytest.fail(f"FEDCHAIN_REQUIRE_CHAINCODE=1 but the chaincode cannot run: {reason}")
    if reason is not None:
        pytest.skip(f"the chaincode cannot run: {reason}")
    process = ChaincodeProcess()
    yield process
    process.stop()


MakeNetwork = Callable[..., StandInNetwork]


@pytest.fixture
def make_network(
    chaincode_service: ChaincodeProcess, consortium_dir: Path, consortium: Consortium
) -> Iterator[MakeNetwork]:
    """Start stand-in channels (options of :class:`StandInNetwork`); all closed afterwards."""
    networks: list[StandInNetwork] = []

    def make(**options: Any) -> StandInNetwork:
        options.setdefault("page_size", 7)  # small pages: the chaincode must follow has_more
        network = StandInNetwork(
            pki_dir=consortium_dir, consortium=consortium,
            chaincode_address=chaincode_service.address, **options,
        )  # fmt: skip
        networks.append(network)
        return network

    yield make
    for network in networks:
        network.close()


@pytest.fixture
def fabric_network(make_network: MakeNetwork) -> StandInNetwork:
    """A fresh channel (empty world state, genesis block only)."""
    return make_network()


@pytest.fixture
def open_fabric(fabric_network: StandInNetwork, consortium_dir: Path) -> Iterator[OpenFabric]:
    """``open_fabric(org, network=fabric_network, **FabricLedger options)``; closed afterwards."""
    handles: list[FabricLedger] = []

    def open_(org: str, network: StandInNetwork | None = None, **options: Any) -> FabricLedger:
        gateway = gateway_for(network or fabric_network, consortium_dir, org)
        options.setdefault("backoff", FAST)
        ledger = FabricLedger(gateway, owns_gateway=True, **options)
        handles.append(ledger)
        return ledger

    yield open_
    for handle in handles:
        handle.close()


@pytest.fixture
def genesis_record(consortium: Consortium) -> Record:
    return consortium_record(consortium)
