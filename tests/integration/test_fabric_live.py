"""Checks against a REAL Hyperledger Fabric network that someone else runs, or the test one.

Which network: set, for a peer with the Gateway enabled and the fedchain chaincode deployed,

    FEDCHAIN_FABRIC_ENDPOINT   host:port of the peer's gateway
    FEDCHAIN_FABRIC_TLS_CA     the peer's TLS CA certificate (PEM file; unset for plaintext)
    FEDCHAIN_FABRIC_MSP_DIR    an MSP folder (fedchain pki, cryptogen or Fabric CA layout)
    FEDCHAIN_FABRIC_MSP_ID     its MSP id
    FEDCHAIN_FABRIC_CHANNEL    the channel (default fedchain)
    FEDCHAIN_FABRIC_CHAINCODE  the chaincode name (default fedchain)
    FEDCHAIN_FABRIC_PKI        optional: the consortium's PKI folder (``fedchain pki init --out``)

For a ``fabric-network/network.sh up`` network these are: ``127.0.0.1:7051`` (or the moved
port), ``<work>/pki/org1/msp/tlscacerts/ca.pem``, ``<work>/pki/org1/users/aggregator/msp``,
``org1``, and ``FEDCHAIN_FABRIC_PKI=<work>/pki``. Without them, the tests use the network of
``tests/fabric_support/real.py`` (``FEDCHAIN_FABRIC_NETWORK``, or one it starts) as its
aggregator, or skip with its reason.

The read-only checks change nothing. The write check publishes one ``run`` record with a fresh
id (ledger writes are permanent); on a configured network only with
``FEDCHAIN_FABRIC_LIVE_WRITE=1``. It needs the consortium's aggregator identity, and the
consortium record on the channel: on a fresh network it writes that record first (from
``FEDCHAIN_FABRIC_PKI``), as the aggregator does when it opens the ledger.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conformance.ledger_suite import run_record

from fedchain.config import FabricSettings, load_settings
from fedchain.errors import RuleViolation
from fedchain.ledger import Query, parse_record
from fedchain.ledger.chain import consortium_record
from fedchain.ledger.fabric import FabricLedger, ensure_consortium, open_fabric_ledger, unpack_seq
from fedchain.pki import load_consortium

REQUIRED = ("FEDCHAIN_FABRIC_ENDPOINT", "FEDCHAIN_FABRIC_MSP_DIR", "FEDCHAIN_FABRIC_MSP_ID")
CONFIGURED = all(os.environ.get(name) for name in REQUIRED)

pytest_plugins = ["tests.fabric_support.real"]
pytestmark = [pytest.mark.fabric_live, pytest.mark.fabric]


@pytest.fixture(scope="module")
def target(request: pytest.FixtureRequest) -> tuple[FabricSettings, Path | None, bool]:
    """(settings, the consortium's PKI folder if known, whether writes are allowed)."""
    env = os.environ
    if CONFIGURED:
        settings = FabricSettings(
            endpoint=env["FEDCHAIN_FABRIC_ENDPOINT"],
            tls_ca=Path(env["FEDCHAIN_FABRIC_TLS_CA"]) if env.get("FEDCHAIN_FABRIC_TLS_CA")
            else None,
            channel=env.get("FEDCHAIN_FABRIC_CHANNEL", "fedchain"),
            chaincode=env.get("FEDCHAIN_FABRIC_CHAINCODE", "fedchain"),
            msp_id=env["FEDCHAIN_FABRIC_MSP_ID"],
            identity=Path(env["FEDCHAIN_FABRIC_MSP_DIR"]),
        )  # fmt: skip
        pki = Path(env["FEDCHAIN_FABRIC_PKI"]) if env.get("FEDCHAIN_FABRIC_PKI") else None
        return settings, pki, env.get("FEDCHAIN_FABRIC_LIVE_WRITE") == "1"
    network = request.getfixturevalue("real_network")  # the test network: skip, fail or use
    ledger = load_settings(network.tomls / "aggregator.toml", env={}).ledger
    assert ledger.fabric is not None
    return ledger.fabric, network.pki, True


@pytest.fixture(scope="module")
def live(target: tuple[FabricSettings, Path | None, bool]) -> Iterator[FabricLedger]:
    ledger = open_fabric_ledger(target[0])
    yield ledger
    ledger.close()


def test_reads_place_every_entry_in_ledger_order(live: FabricLedger) -> None:
    entries = live.metadata_get()
    assert [e.seq for e in entries] == sorted({e.seq for e in entries})
    assert live.head() >= (entries[-1].seq if entries else -1)
    for entry in entries:
        block, _, index = unpack_seq(entry.seq)
        assert block >= 1
        assert entry.hash.endswith(f":{index}")
        assert entry.signer == entry.record.org
    assert live.wait(live.head(), 0.2) == []


def test_publish_follow_and_refuse_on_the_real_network(
    live: FabricLedger, target: tuple[FabricSettings, Path | None, bool]
) -> None:
    _, pki, writes = target
    if not writes:
        pytest.skip("FEDCHAIN_FABRIC_LIVE_WRITE=1 unset (writes are permanent)")
    genesis = live.metadata_get(Query(kind="consortium"))
    if not genesis:
        if pki is None:
            pytest.skip("the channel has no consortium record yet, and FEDCHAIN_FABRIC_PKI "
                        "(the consortium's PKI folder) is unset: the test cannot write it")
        consortium = load_consortium(pki)
        if live.org != consortium.aggregator:
            pytest.skip(f"the channel has no consortium record yet; only the aggregator "
                        f"({consortium.aggregator}) writes it; this identity is {live.org}")
        ensure_consortium(live, consortium_record(consortium))
        genesis = live.metadata_get(Query(kind="consortium"))
    (consortium_entry,) = genesis
    aggregator = consortium_entry.record["aggregator"]
    if live.org != aggregator:
        pytest.skip(f"run records are written by the aggregator ({aggregator}); this identity "
                    f"is {live.org}")
    head = live.head()
    record = parse_record({**run_record(f"live-{uuid.uuid4().hex[:12]}"), "org": live.org})
    (entry,) = live.metadata_publish(record)
    assert entry.seq > head
    assert live.metadata_get(Query(run=record.run)) == [entry]
    assert live.wait(head, 30) == [entry]
    with pytest.raises(RuleViolation) as info:
        live.metadata_publish(record)
    assert info.value.rule == "run.duplicate"
