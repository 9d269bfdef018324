"""The signed checkpoint of a ledger head (issue 12, point 6) on real embedded ledger files.

A checkpoint that was edited, signed by someone else or taken on another ledger is refused; a
guarded handle advances it as it reads, and refuses, at its next call, a ledger that another
handle has rolled back while it was open.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conformance.ledger_suite import run_record, task_record
from tests.integration.test_ledger_rollback import cut_from

from fedchain.errors import ConfigError, LedgerError
from fedchain.ledger import parse_record
from fedchain.ledger.checkpoint import Checkpoint, GuardedLedger, Head, LedgerRolledBack
from fedchain.ledger.embedded import EmbeddedLedger
from fedchain.pki import AGGREGATOR_NAME, Consortium, Identity, identity_dir, load_identity


@pytest.fixture
def ids(consortium_dir: Path) -> dict[str, Identity]:
    names = {"org1": AGGREGATOR_NAME, "org2": "client1"}
    return {o: load_identity(identity_dir(consortium_dir, o, n)) for o, n in names.items()}


@pytest.fixture
def ledger(tmp_path: Path, consortium: Consortium, ids: dict[str, Identity]) -> Path:
    path = tmp_path / "ledger.sqlite"
    with EmbeddedLedger.create(path, consortium, ids["org1"]) as led:
        led.metadata_publish([parse_record(run_record()), parse_record(task_record("t1", 1))])
    return path


def test_a_guarded_handle_advances_and_refuses_a_rollback_while_open(
    ledger: Path, tmp_path: Path, consortium: Consortium, ids: dict[str, Identity]
) -> None:
    mark = tmp_path / "org2.head"
    guarded = GuardedLedger(EmbeddedLedger.open(ledger, ids["org2"]), mark, ids["org2"], consortium)
    try:
        assert guarded.head_seen.seq == 2
        assert Checkpoint.load(mark, consortium).head == guarded.head_seen
        with EmbeddedLedger.open(ledger, ids["org1"]) as writer:
            writer.metadata_publish(parse_record(task_record("t2", 2)))
        assert [e.seq for e in guarded.wait(2, 5.0)] == [3]
        assert Checkpoint.load(mark, consortium).head.seq == 3
        cut_from(ledger, 3)
        with pytest.raises(LedgerRolledBack, match="went backwards"):
            guarded.wait(3, 0.0)
    finally:
        guarded.close()
    with pytest.raises(LedgerRolledBack, match="went backwards: its last entry is 2"):
        GuardedLedger(EmbeddedLedger.open(ledger), mark, ids["org2"], consortium)


def test_an_edited_or_foreign_checkpoint_is_refused(
    ledger: Path, tmp_path: Path, consortium: Consortium, ids: dict[str, Identity]
) -> None:
    mark = tmp_path / "org2.head"
    GuardedLedger(EmbeddedLedger.open(ledger), mark, ids["org2"], consortium).close()
    doc = json.loads(mark.read_text())
    edited = tmp_path / "edited.head"
    edited.write_text(json.dumps({**doc, "seq": doc["seq"] - 1}))
    with pytest.raises(LedgerError, match="not validly signed"):
        Checkpoint.load(edited, consortium)
    claimed = tmp_path / "claimed.head"
    claimed.write_text(json.dumps({**doc, "org": "org1"}))
    with pytest.raises(LedgerError, match="not validly signed"):
        Checkpoint.load(claimed, consortium)
    with pytest.raises(LedgerError, match="is org2's, not org1's"):
        GuardedLedger(EmbeddedLedger.open(ledger), mark, ids["org1"], consortium)
    other = tmp_path / "other.sqlite"
    EmbeddedLedger.create(other, consortium, ids["org1"]).close()
    with pytest.raises(LedgerRolledBack, match="not the ledger the checkpoint was taken on"):
        GuardedLedger(EmbeddedLedger.open(other), mark, ids["org2"], consortium)


@pytest.mark.parametrize("text", ["", "3", "-1:" + "a" * 64, "3:" + "a" * 63, "3:" + "g" * 64])
def test_a_malformed_head_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match="SEQ:HASH"):
        Head.parse(text)
    assert str(Head.parse("7:" + "AB" * 32)) == "7:" + "ab" * 32
