"""Opt-in checks against a REAL Hyperledger Fabric network (skipped unless configured).

Set, for a peer with the Gateway enabled and the fedchain chaincode deployed:

    FEDCHAIN_FABRIC_ENDPOINT   host:port of the peer's gateway
    FEDCHAIN_FABRIC_TLS_CA     the peer's TLS CA certificate (PEM file; unset for plaintext)
    FEDCHAIN_FABRIC_MSP_DIR    an MSP folder (fedchain pki, cryptogen or Fabric CA layout)
    FEDCHAIN_FABRIC_MSP_ID     its MSP id
    FEDCHAIN_FABRIC_CHANNEL    the channel (default fedchain)
    FEDCHAIN_FABRIC_CHAINCODE  the chaincode name (default fedchain)

The read-only checks change nothing. ``FEDCHAIN_FABRIC_LIVE_WRITE=1`` also publishes one
``run`` record with a fresh id (ledger writes are permanent; the identity must be the
consortium's aggregator, and the consortium record must already be on the channel).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conformance.ledger_suite import run_record

from fedchain.config import FabricSettings
from fedchain.errors import RuleViolation
from fedchain.ledger import Query, parse_record
from fedchain.ledger.fabric import FabricLedger, open_fabric_ledger, unpack_seq

REQUIRED = ("FEDCHAIN_FABRIC_ENDPOINT", "FEDCHAIN_FABRIC_MSP_DIR", "FEDCHAIN_FABRIC_MSP_ID")
_missing = [name for name in REQUIRED if not os.environ.get(name)]

pytestmark = [
    pytest.mark.fabric_live,
    pytest.mark.skipif(
        bool(_missing), reason=f"no Fabric network configured ({', '.join(_missing)} unset)"
    ),
]


@pytest.fixture(scope="module")
def live() -> Iterator[FabricLedger]:
    env = os.environ
    settings = FabricSettings(
        endpoint=env["FEDCHAIN_FABRIC_ENDPOINT"],
        tls_ca=Path(env["FEDCHAIN_FABRIC_TLS_CA"]) if env.get("FEDCHAIN_FABRIC_TLS_CA") else None,
        channel=env.get("FEDCHAIN_FABRIC_CHANNEL", "fedchain"),
        chaincode=env.get("FEDCHAIN_FABRIC_CHAINCODE", "fedchain"),
        msp_id=env["FEDCHAIN_FABRIC_MSP_ID"],
        identity=Path(env["FEDCHAIN_FABRIC_MSP_DIR"]),
    )
    ledger = open_fabric_ledger(settings)
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


WRITES = os.environ.get("FEDCHAIN_FABRIC_LIVE_WRITE") == "1"


@pytest.mark.skipif(not WRITES, reason="FEDCHAIN_FABRIC_LIVE_WRITE=1 unset (writes are permanent)")
def test_publish_follow_and_refuse_on_the_real_network(live: FabricLedger) -> None:
    head = live.head()
    record = parse_record({**run_record(f"live-{uuid.uuid4().hex[:12]}"), "org": live.org})
    (entry,) = live.metadata_publish(record)
    assert entry.seq > head
    assert live.metadata_get(Query(run=record.run)) == [entry]
    assert live.wait(head, 30) == [entry]
    with pytest.raises(RuleViolation) as info:
        live.metadata_publish(record)
    assert info.value.rule == "run.duplicate"
