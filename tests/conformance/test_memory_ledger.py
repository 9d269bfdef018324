"""The conformance suite against the in-memory backend."""

from __future__ import annotations

import pytest

from fedchain.ledger import MemoryLedger, MemoryStore, parse_record
from tests.conformance.ledger_suite import LedgerConformance, OpenLedger

GENESIS = {
    "v": 1,
    "kind": "consortium",
    "org": "org1",
    "name": "test",
    "aggregator": "org1",
    "orgs": [{"id": o, "ca_sha256": "00" * 32} for o in ("org1", "org2", "org3")],
}


class TestMemoryLedger(LedgerConformance):
    __test__ = True

    @pytest.fixture
    def open_ledger(self) -> OpenLedger:
        store = MemoryStore()
        MemoryLedger(store, "org1").metadata_publish(parse_record(GENESIS))
        return lambda org: MemoryLedger(store, org)
