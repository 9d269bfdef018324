"""A round's ``close`` record rides in the same transaction as the next round's tasks.

On Fabric every transaction the aggregator waits for costs a block interval, so a close held
back until the next tasks saves one per round. These tests drive an in-process ``LedgerGrid`` on
the in-memory ledger (which enforces every write rule) through a recording wrapper that notes
each ``metadata_publish`` call, i.e. each transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, RecordDict

from fedchain.errors import RuleViolation
from fedchain.ledger import Entry, Query, Record, parse_record
from fedchain.ledger.base import as_records
from fedchain.ledger.memory import MemoryLedger, MemoryStore
from fedchain.ledger.replay import replay
from fedchain.runtime.grid import GridSettings, LedgerGrid

ORGS = ("org1", "org2", "org3")
H = "ab" * 32


class Recording:
    """A ledger handle that records the kinds of each transaction, and can refuse one."""

    def __init__(self, inner: MemoryLedger) -> None:
        self.inner = inner
        self.txs: list[list[str]] = []
        self.refuse_next = False

    @property
    def org(self) -> str:
        return self.inner.org

    def metadata_publish(self, records: Record | Sequence[Record]) -> list[Entry]:
        batch = as_records(records)
        if self.refuse_next:
            self.refuse_next = False
            raise RuleViolation("task.duplicate", "refused by the test")
        written = self.inner.metadata_publish(batch)
        self.txs.append([f"{r.kind}@{r.round}" if r.round else r.kind for r in batch])
        return written

    def metadata_get(self, query: Query | None = None) -> list[Entry]:
        return self.inner.metadata_get(query)

    def wait(self, after: int, timeout: float) -> list[Entry]:
        return self.inner.wait(after, timeout)

    def head(self) -> int:
        return self.inner.head()

    def close(self) -> None:
        self.inner.close()


class StubDataPlane:
    """Just enough of ``DataPlaneServer`` for opening tasks: offers are noted, not served."""

    def __init__(self) -> None:
        self.offers: list[str] = []

    def offer(self, sha256: str, data: bytes, orgs: Iterable[str], *, verify: bool = True) -> None:
        self.offers.append(sha256)

    def withdraw(self, sha256: str) -> None:
        pass

    def expect(self, org: str, sha256: str, max_size: int | None = None) -> Future[bytearray]:
        return Future()

    def present(self) -> frozenset[str]:
        return frozenset(ORGS)


@pytest.fixture
def setup() -> tuple[LedgerGrid, Recording, list[tuple[str, dict[str, Any]]]]:
    store = MemoryStore()
    MemoryLedger(store, "org1").metadata_publish(parse_record({
        "v": 1, "kind": "consortium", "org": "org1", "name": "test", "aggregator": "org1",
        "orgs": [{"id": o, "ca_sha256": H} for o in ORGS],
    }))  # fmt: skip
    ledger = Recording(MemoryLedger(store, "org1"))
    events: list[tuple[str, dict[str, Any]]] = []
    grid = LedgerGrid(
        ledger, StubDataPlane(), ORGS, GridSettings(run="r1"),  # type: ignore[arg-type]
        events=lambda name, data: events.append((name, data)),
    )  # fmt: skip
    return grid, ledger, events


def push_round(grid: LedgerGrid, rnd: int) -> None:
    content = RecordDict({
        "arrays": ArrayRecord([np.full(4, rnd, np.float32)]),
        "config": ConfigRecord({"server-round": rnd}),
    })  # fmt: skip
    nodes = grid.get_node_ids()
    grid.push_messages([grid.create_message(content, "train", n, str(rnd)) for n in nodes])


def test_a_held_close_goes_in_the_next_rounds_task_transaction(setup: Any) -> None:
    grid, ledger, events = setup
    push_round(grid, 1)
    grid.close_round(1, model_sha256=H, metrics={"acc": 0.5}, defer=True)
    assert ledger.txs == [["run"], ["task@1"]]  # nothing written yet
    assert not [e for e in events if e[0] == "closed"]  # and not reported as closed
    push_round(grid, 2)
    assert ledger.txs[-1] == ["close@1", "task@2"]
    assert ("closed", {"round": 1, "model_sha256": H, "acc": 0.5}) in events
    grid.close_round(2, model_sha256=H)  # the run's last round: written at once, alone
    assert ledger.txs[-1] == ["close@2"]
    rows = [r for r in replay(ledger.metadata_get()) if r.run == "r1"]
    assert [(r.round, r.model_sha256) for r in rows] == [(1, H), (2, H)]


def test_flush_writes_held_closes_and_closing_twice_writes_once(setup: Any) -> None:
    grid, ledger, _ = setup
    push_round(grid, 1)
    grid.close_round(1, model_sha256=H, defer=True)
    grid.close_round(1, model_sha256=H, defer=True)
    assert grid.open_rounds() == []
    grid.flush()
    grid.flush()
    assert ledger.txs == [["run"], ["task@1"], ["close@1"]]


def test_a_round_nobody_closed_is_closed_with_the_next_tasks(setup: Any) -> None:
    grid, ledger, _ = setup
    push_round(grid, 1)
    push_round(grid, 2)  # a strategy without LedgerStrategy never closes round 1 itself
    assert ledger.txs[-1] == ["close@1", "task@2"]
    (close,) = [e.record for e in ledger.metadata_get(Query(kind="close"))]
    assert close["round"] == 1
    assert close["model_sha256"] is None


def test_a_refused_transaction_keeps_the_held_close(setup: Any) -> None:
    grid, ledger, events = setup
    push_round(grid, 1)
    grid.close_round(1, model_sha256=H, defer=True)
    ledger.refuse_next = True
    with pytest.raises(RuleViolation):
        push_round(grid, 2)
    assert not ledger.metadata_get(Query(kind="close"))
    assert not [e for e in events if e[0] == "closed"]
    grid.flush()  # e.g. the server closing what is left as it stops
    assert ledger.txs[-1] == ["close@1"]
    assert [e[1]["round"] for e in events if e[0] == "closed"] == [1]


def test_rounds_left_open_are_closed_when_the_server_app_returns(setup: Any) -> None:
    grid, ledger, _ = setup
    with grid.closing_rounds():
        push_round(grid, 1)
        push_round(grid, 2)  # closes round 1 in its own transaction
    assert ledger.txs[-2:] == [["close@1", "task@2"], ["close@2"]]


def test_a_failing_server_app_still_writes_the_close_it_held(setup: Any) -> None:
    grid, ledger, _ = setup

    def failing_app() -> None:
        push_round(grid, 1)
        grid.close_round(1, model_sha256=H, defer=True)
        raise ValueError("app failed")

    def serve() -> None:
        with grid.closing_rounds():
            failing_app()

    with pytest.raises(ValueError, match="app failed"):
        serve()
    assert ledger.txs[-1] == ["close@1"]
    (close,) = [e.record for e in ledger.metadata_get(Query(kind="close"))]
    assert close["model_sha256"] == H
