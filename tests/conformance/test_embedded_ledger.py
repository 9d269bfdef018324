"""The conformance suite against the embedded (SQLite) backend, on real files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fedchain.ledger.embedded import EmbeddedLedger
from fedchain.pki import AGGREGATOR_NAME, Consortium, identity_dir, load_identity
from tests.conformance.ledger_suite import LedgerConformance, OpenLedger


class TestEmbeddedLedger(LedgerConformance):
    __test__ = True

    @pytest.fixture
    def open_ledger(
        self, tmp_path: Path, consortium_dir: Path, consortium: Consortium
    ) -> Iterator[OpenLedger]:
        names = {"org1": AGGREGATOR_NAME, "org2": "client1", "org3": "client1"}
        ids = {o: load_identity(identity_dir(consortium_dir, o, n)) for o, n in names.items()}
        path = tmp_path / "ledger.sqlite"
        handles = [EmbeddedLedger.create(path, consortium, ids["org1"])]

        def open_handle(org: str) -> EmbeddedLedger:
            handle = EmbeddedLedger.open(path, ids[org], consortium=consortium)
            handles.append(handle)
            return handle

        yield open_handle
        for handle in handles:
            handle.close()
