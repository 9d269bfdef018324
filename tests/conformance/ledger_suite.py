"""One conformance suite for every ``Ledger`` backend.

A backend's test module subclasses :class:`LedgerConformance` and provides the fixture
``open_ledger``: a callable ``open_ledger(org) -> Ledger`` giving handles, one per writing
organization, onto ONE fresh ledger whose consortium record (org1, org2, org3; aggregator
org1) is already written. The write-sequence vectors shared with the chaincode run here
against the real backend.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fedchain.errors import RecordError, RuleViolation
from fedchain.ledger import Ledger, Query, parse_record, watch
from fedchain.ledger.replay import replay

OpenLedger = Callable[[str], Ledger]
VECTORS = Path(__file__).parents[1] / "vectors" / "ledger" / "sequences.json"
SCENARIOS = [
    s
    for s in json.loads(VECTORS.read_text(encoding="utf-8"))["scenarios"]
    # Scenarios about the consortium record itself, or about signers without an identity,
    # are covered by the unit vectors; real backends get their genesis from the PKI.
    if s["steps"][0]["expect"] == "ok"
    and s["steps"][0]["records"][0]["kind"] == "consortium"
    and all(step["signer"] in {"org1", "org2", "org3"} for step in s["steps"])
]


def run_record(run: str = "r1") -> dict[str, Any]:
    h = "ab" * 32
    return {
        "v": 1,
        "kind": "run",
        "org": "org1",
        "run": run,
        "app_sha256": h,
        "strategy_sha256": h,
        "model_sha256": h,
        "config": {"rounds": 2},
    }


def task_record(task: str, rnd: int, run: str = "r1") -> dict[str, Any]:
    recipients = [
        {"org": o, "payload_sha256": "cd" * 32, "payload_size": 10} for o in ("org2", "org3")
    ]
    return {
        "v": 1,
        "kind": "task",
        "org": "org1",
        "run": run,
        "round": rnd,
        "task": task,
        "type": "train",
        "model_sha256": None,
        "deadline": 0,
        "recipients": recipients,
    }


def update_record(org: str, task: str, rnd: int) -> dict[str, Any]:
    return {
        "v": 1,
        "kind": "update",
        "org": org,
        "run": "r1",
        "round": rnd,
        "task": task,
        "status": "ok",
        "update_sha256": "ef" * 32,
        "update_size": 5,
        "num_examples": 3,
        "metrics": {"loss": 0.25},
        "error": None,
    }


class LedgerConformance:
    """Behaviour every backend must show; subclasses provide ``open_ledger``."""

    __test__ = False

    @pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s["name"])
    def test_write_sequence_vectors(
        self, open_ledger: OpenLedger, scenario: dict[str, Any]
    ) -> None:
        handles = {org: open_ledger(org) for org in ("org1", "org2", "org3")}
        for i, step in enumerate(scenario["steps"][1:], start=1):
            ledger = handles[step["signer"]]
            before = ledger.head()
            try:
                ledger.metadata_publish([parse_record(r) for r in step["records"]])
                got = "ok"
            except RecordError:
                got = "record.invalid"
            except RuleViolation as exc:
                got = exc.rule
            assert got == step["expect"], f"step {i}"
            if got != "ok":
                assert ledger.head() == before, f"step {i}: a refused write changed the ledger"

    def test_publish_returns_entries_in_order(self, open_ledger: OpenLedger) -> None:
        agg = open_ledger("org1")
        head = agg.head()
        entries = agg.metadata_publish(
            [parse_record(run_record()), parse_record(task_record("t1", 1))]
        )
        assert [e.seq for e in entries] == sorted(e.seq for e in entries)
        assert entries[0].seq > head
        assert agg.head() == entries[-1].seq
        assert [e.record.kind for e in entries] == ["run", "task"]
        assert all(e.signer == "org1" for e in entries)

    def test_get_filters_by_every_field(self, open_ledger: OpenLedger) -> None:
        agg, org2, org3 = open_ledger("org1"), open_ledger("org2"), open_ledger("org3")
        agg.metadata_publish([parse_record(run_record()), parse_record(task_record("t1", 1))])
        org2.metadata_publish(parse_record(update_record("org2", "t1", 1)))
        org3.metadata_publish(parse_record(update_record("org3", "t1", 1)))
        assert [e.record.org for e in agg.metadata_get(Query(kind="update"))] == ["org2", "org3"]
        assert len(org2.metadata_get(Query(org="org3", run="r1", round=1, task="t1"))) == 1
        assert org2.metadata_get(Query(round=2)) == []
        assert len(agg.metadata_get(Query(run="r1"))) == 4
        first = agg.metadata_get(Query(run="r1", limit=1))
        assert len(first) == 1
        assert first[0].record.kind == "run"
        later = agg.metadata_get(Query(after=first[0].seq, kind="update"))
        assert {e.record.org for e in later} == {"org2", "org3"}

    def test_records_round_trip_byte_for_byte(self, open_ledger: OpenLedger) -> None:
        agg = open_ledger("org1")
        record = parse_record(run_record())
        agg.metadata_publish(record)
        (got,) = open_ledger("org2").metadata_get(Query(kind="run"))
        assert got.record.canonical == record.canonical
        assert got.record.hash == record.hash

    def test_wait_times_out_empty_then_sees_a_new_entry(self, open_ledger: OpenLedger) -> None:
        agg, org2 = open_ledger("org1"), open_ledger("org2")
        head = org2.head()
        assert org2.wait(head, 0.05) == []
        agg.metadata_publish(parse_record(run_record()))
        got = org2.wait(head, 5.0)
        assert [e.record.kind for e in got] == ["run"]

    def test_watch_delivers_writes_from_another_handle(self, open_ledger: OpenLedger) -> None:
        agg, org2 = open_ledger("org1"), open_ledger("org2")
        head = org2.head()
        seen: list[str] = []
        ready = threading.Event()

        def follow() -> None:
            ready.set()
            for entry in watch(org2, head, step=0.2):
                seen.append(entry.record.kind)
                if entry.record.kind == "task":
                    return

        thread = threading.Thread(target=follow)
        thread.start()
        ready.wait(5)
        agg.metadata_publish(parse_record(run_record()))
        agg.metadata_publish(parse_record(task_record("t1", 1)))
        thread.join(10)
        assert not thread.is_alive()
        assert seen == ["run", "task"]

    def test_refused_batch_leaves_ledger_unchanged(self, open_ledger: OpenLedger) -> None:
        agg = open_ledger("org1")
        agg.metadata_publish(parse_record(run_record()))
        before = agg.metadata_get()
        batch = [parse_record(task_record("t1", 1)), parse_record(task_record("t1", 1))]
        with pytest.raises(RuleViolation) as info:
            agg.metadata_publish(batch)
        assert info.value.rule == "task.duplicate"
        assert agg.metadata_get() == before
        agg.metadata_publish(batch[0])  # the first half was not applied

    def test_replaying_the_backend_passes_the_rules(self, open_ledger: OpenLedger) -> None:
        agg, org2 = open_ledger("org1"), open_ledger("org2")
        agg.metadata_publish([parse_record(run_record()), parse_record(task_record("t1", 1))])
        org2.metadata_publish(parse_record(update_record("org2", "t1", 1)))
        rows = replay(agg.metadata_get())
        assert [(r.run, r.round) for r in rows] == [("r1", 1)]
        assert rows[0].participants == ["org2", "org3"]
        assert rows[0].num_examples == {"org2": 3}
