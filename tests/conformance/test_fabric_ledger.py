"""The conformance suite against ``FabricLedger`` on a REAL Fabric 2.5 network
(``fabric-network/network.sh``: a Raft orderer, a peer per organization, the chaincode as a
service), plus what else of the Fabric backend a real network can show.

Every test gets an empty ledger: a fresh chaincode name on the network's channel (the same
chaincode committed under a new name has its own, empty, world state), so tests never see each
other's records. Each organization writes through its own peer's Gateway as itself. See
``tests/fabric_support/real.py`` for where the network comes from (skipped without one, a
failure under ``FEDCHAIN_REQUIRE_FABRIC=1``); ``test_fabric_ledger_standin.py`` keeps what
only the stand-in channel can stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from fedchain.config import FabricSettings, LedgerSettings
from fedchain.errors import GatewayError, LedgerError, RuleViolation
from fedchain.ledger import Record, parse_record
from fedchain.ledger.chain import consortium_record
from fedchain.ledger.fabric import unpack_seq
from fedchain.ledger.fabric.retry import unknown_function
from fedchain.ledger.factory import open_ledger
from fedchain.pki import Consortium
from tests.conformance.ledger_suite import (
    LedgerConformance,
    OpenLedger,
    run_record,
    task_record,
    update_record,
)

if TYPE_CHECKING:
    from tests.fabric_support.real import OpenReal, RealNetwork

pytest_plugins = ["tests.fabric_support.real"]
pytestmark = pytest.mark.fabric


class TestFabricLedger(LedgerConformance):
    __test__ = True

    @pytest.fixture
    def open_ledger(self, open_real: OpenReal, real_genesis: Record) -> OpenLedger:
        open_real("org1").metadata_publish(real_genesis)
        return open_real


def test_refusals_carry_the_chaincode_rule_and_message(
    open_real: OpenReal, real_genesis: Record
) -> None:
    agg = open_real("org1")
    agg.metadata_publish(real_genesis)
    agg.metadata_publish([parse_record(run_record()), parse_record(task_record("t1", 1))])
    org2 = open_real("org2")
    org2.metadata_publish(parse_record(update_record("org2", "t1", 1)))
    with pytest.raises(RuleViolation) as info:
        org2.metadata_publish(parse_record(update_record("org2", "t1", 1)))
    assert info.value.rule == "update.duplicate"
    assert "org2" in info.value.detail


def test_entries_are_placed_by_block_and_signed_by_their_org(
    open_real: OpenReal, real_genesis: Record
) -> None:
    agg = open_real("org1")
    (genesis,) = agg.metadata_publish(real_genesis)
    (run,) = agg.metadata_publish(parse_record(run_record()))
    (block_g, _, _), (block_r, _, _) = unpack_seq(genesis.seq), unpack_seq(run.seq)
    assert block_r > block_g >= 1  # two transactions, two blocks on a lone writer
    assert run.hash.endswith(":0")
    assert run.signer == "org1"
    assert open_real("org3").metadata_get() == [genesis, run]


def _settings(
    network: RealNetwork, namespace: str, org: str, resume_file: Path | None = None
) -> LedgerSettings:
    tls_ca = network.pki / org / "msp" / "tlscacerts" / "ca.pem"
    settings = FabricSettings(endpoint=network.endpoint(org), tls_ca=tls_ca,
                              channel=network.channel, chaincode=namespace,
                              resume_file=resume_file)  # fmt: skip
    return LedgerSettings(backend="fabric", fabric=settings)


def test_the_factory_opens_fabric_and_the_aggregator_writes_the_genesis(
    real_network: RealNetwork, real_namespace: str
) -> None:
    consortium = real_network.consortium()
    org2 = open_ledger(_settings(real_network, real_namespace, "org2"),
                       real_network.user("org2"), consortium)  # fmt: skip
    try:
        assert org2.metadata_get() == []  # only the aggregator writes the genesis
        agg = open_ledger(_settings(real_network, real_namespace, "org1"),
                          real_network.user("org1"), consortium)  # fmt: skip
        agg.close()
        (genesis,) = org2.metadata_get()
        assert genesis.record == consortium_record(consortium)
        stranger = Consortium(name="elsewhere", aggregator="org1", cas=consortium.cas)
        with pytest.raises(LedgerError, match="differs"):
            open_ledger(_settings(real_network, real_namespace, "org2"),
                        real_network.user("org2"), stranger)  # fmt: skip
    finally:
        org2.close()


def test_the_factory_passes_the_configured_resume_file(
    real_network: RealNetwork, real_namespace: str, tmp_path: Path
) -> None:
    state = tmp_path / "org1.fabric-index"
    settings = _settings(real_network, real_namespace, "org1", resume_file=state)
    agg = open_ledger(settings, real_network.user("org1"), real_network.consortium())
    try:
        agg.metadata_publish(parse_record(run_record()))
        assert len(agg.metadata_get()) == 2  # genesis and run
    finally:
        agg.close()
    assert state.is_file()
    assert len(state.read_text().splitlines()) >= 2  # a header and the blocks seen
    again = open_ledger(settings, real_network.user("org1"), real_network.consortium())
    try:
        assert [e.record.kind for e in again.metadata_get()] == ["consortium", "run"]
    finally:
        again.close()


def test_the_chaincode_answer_for_a_missing_function_is_recognised(
    real_network: RealNetwork,
) -> None:
    """head() falls back to reading every record on a chaincode deployed before metadataHead;
    it knows that case from the real chaincode's answer to a function it does not have."""
    with real_network.gateway("org2") as gateway:
        contract = gateway.network(real_network.channel).contract(real_network.chaincode)
        with pytest.raises(GatewayError) as info:
            contract.evaluate("metadataNope", [])
    assert unknown_function(info.value, "metadataNope")
    assert not unknown_function(info.value, "metadataHead")
