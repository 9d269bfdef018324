"""Start-up that converges, on a REAL Fabric network: ``network.sh`` reports a chaincode ready
only once every organization's peer can plan an endorsement of it.

A Gateway plans endorsements from its peer's discovery service, which learns the other peers
through gossip; until it has, every write is refused with ``FAILED_PRECONDITION`` "no peer
combination can satisfy the endorsement policy". ``up``, ``start`` and ``define`` therefore wait
(bounded) until discovery on every peer names every organization's peer as an endorser. These
tests check that the first endorsement through each gateway right after they return is planned
(it reaches the chaincode, which refuses a malformed record) with no retry at all, and that a
network that cannot converge fails in bounded time naming what is missing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from tests.fabric_support.real import ROOT, RealNetwork

from fedchain.errors import EndorseError

pytest_plugins = ["tests.fabric_support.real"]
pytestmark = [pytest.mark.slow, pytest.mark.fabric]

SCRIPTS = ROOT / "fabric-network" / "scripts"


def first_endorsement(network: RealNetwork, org: str, chaincode: str) -> EndorseError:
    """Endorse a malformed record once through ``org``'s own gateway (no retry) and return the
    refusal: planned endorsements reach the chaincode and come back ``ABORTED``."""
    with network.gateway(org) as gateway:
        contract = gateway.network(network.channel).contract(chaincode)
        with pytest.raises(EndorseError) as info:
            contract.new_proposal("metadataPublish", ["not json"]).endorse()
    return info.value


def assert_planned(network: RealNetwork, chaincode: str) -> None:
    for org in network.orgs:
        refused = first_endorsement(network, org, chaincode)
        assert refused.code == "ABORTED", (org, refused.code, str(refused))
        assert "satisfy the endorsement policy" not in str(refused)
        assert any("record.invalid" in message for _, _, message in refused.details), refused


def test_define_returns_once_every_gateway_can_plan_an_endorsement(
    real_network: RealNetwork,
) -> None:
    name = f"c{uuid.uuid4().hex[:10]}"
    real_network.network_sh("define", name)
    assert_planned(real_network, name)


def test_start_after_a_peer_restart_returns_once_discovery_has_converged(
    real_network: RealNetwork,
) -> None:
    """org3's peer is killed (``kill -9``) and started again with ``network.sh start``: when it
    returns, org3's restarted gateway and the others plan endorsements at the first try."""
    peer = f"{real_network.topology['PEER_NAME']}.org3"
    real_network.kill(peer)
    try:
        real_network.start()
        assert_planned(real_network, real_network.chaincode)
    finally:
        if real_network.pid(peer) is None:
            real_network.start()


def test_a_network_that_cannot_converge_fails_in_bounded_time_naming_what_is_missing(
    real_network: RealNetwork,
) -> None:
    """The wait of ``up``/``start``/``define`` (``wait_endorsers``) on a chaincode no peer has:
    it gives up after FEDCHAIN_FABRIC_CONVERGE_TIMEOUT and names the peer asked, the peers it
    lacks, the chaincode and what to check."""
    env = {**os.environ, "FEDCHAIN_FABRIC_WORK": str(real_network.work),
           "FEDCHAIN_FABRIC_CONVERGE_TIMEOUT": "1"}  # fmt: skip
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    script = f"source {SCRIPTS}/common.sh; source {SCRIPTS}/chaincode.sh; wait_endorsers nosuchcc"
    started = time.monotonic()
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env,
                            timeout=60, check=False)  # fmt: skip
    took = time.monotonic() - started
    assert result.returncode == 1
    assert took < 10, took
    error = result.stderr.strip()
    assert error.startswith("error: the network did not converge within 1 s"), error
    peers = " ".join(f"{real_network.topology['PEER_NAME']}.{org}" for org in real_network.orgs)
    assert f"does not name {peers} as an endorser of chaincode nosuchcc" in error
    assert "gossip" in error
    assert "FEDCHAIN_FABRIC_CONVERGE_TIMEOUT" in error
