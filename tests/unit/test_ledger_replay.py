"""Replaying a backend's entries catches records the write rules would have refused."""

from __future__ import annotations

import dataclasses

import pytest
from tests.conformance.ledger_suite import run_record, task_record, update_record
from tests.conformance.test_memory_ledger import GENESIS

from fedchain.errors import LedgerCorrupted
from fedchain.ledger import MemoryLedger, MemoryStore, parse_record
from fedchain.ledger.replay import replay


def _entries() -> list:  # type: ignore[type-arg]
    store = MemoryStore()
    agg, org2 = MemoryLedger(store, "org1"), MemoryLedger(store, "org2")
    agg.metadata_publish(parse_record(GENESIS))
    agg.metadata_publish([parse_record(run_record()), parse_record(task_record("t1", 1))])
    org2.metadata_publish(parse_record(update_record("org2", "t1", 1)))
    return agg.metadata_get()


def test_an_honest_ledger_replays() -> None:
    assert [r.round for r in replay(_entries())] == [1]


def test_a_record_in_another_orgs_name_is_caught() -> None:
    entries = _entries()
    entries[-1] = dataclasses.replace(entries[-1], signer="org3")
    with pytest.raises(LedgerCorrupted, match="written by org3") as info:
        replay(entries)
    assert info.value.seq == entries[-1].seq


def test_a_dropped_entry_breaks_the_rules_at_the_next_one() -> None:
    entries = _entries()
    del entries[1]  # the run record: the task after it has no run
    with pytest.raises(LedgerCorrupted, match=r"run\.unknown"):
        replay(entries)
