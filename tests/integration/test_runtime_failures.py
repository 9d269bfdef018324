"""§5 Failures, with real processes, real mTLS on 127.0.0.1 and a real embedded ledger file.

An organization killed (``kill -9``) while it trains does not stall its round; an organization
that restarts rejoins; an aggregator killed mid-run and started again with the same command
resumes from the last closed round with the same global model; a ledger that is briefly locked
delays the round without losing anything. The tests synchronise on the processes' ``--json``
events and on the ledger's records, never on sleeps.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from tests.integration.runtime_support import (
    Deployment,
    by_org,
    closes,
    free_port,
    records,
)

from fedchain.ledger.audit import audit

pytestmark = pytest.mark.slow

HANG = "tests.apps.misbehaving:hang_in_round_2"
GATED = "tests.apps.misbehaving:gated"
#: Far above what a round takes here: reaching it would mean the runtime waited for a dead org.
DEADLINE = 40.0


def _audit_ok(dep: Deployment) -> None:
    report = audit(dep.ledger, models_dir=dep.models)
    assert report.ok
    assert report.models is not None
    assert not report.models.missing
    assert not report.models.mismatched


def test_org_killed_while_training_does_not_stall_its_round(deployment: Deployment) -> None:
    dep = deployment
    agg, clients, _ = dep.start(
        {"org1": None, "org2": None, "org3": HANG}, rounds=3, deadline=DEADLINE
    )
    clients["org3"].event("app", state="training", round=2)
    killed_at = time.monotonic()
    clients["org3"].kill()

    closed = agg.event("closed", round=2)
    assert closed["at"] - killed_at < DEADLINE / 2  # presence, not the deadline, ended the wait
    agg.expect_exit(0)
    for org in ("org1", "org2"):
        clients[org].expect_exit(0)

    rounds = closes(dep.ledger)
    assert sorted(rounds) == [1, 2, 3]
    assert by_org(rounds[2]["dropouts"], "stage") == {"org3": "train"}
    assert sorted(by_org(rounds[2]["aggregated"], "update_sha256")) == ["org1", "org2"]
    assert sorted(by_org(rounds[1]["aggregated"], "update_sha256")) == ["org1", "org2", "org3"]
    # org3 never announced anything for round 2's training task
    train2 = [t for t in records(dep.ledger, kind="task", round=2) if t["type"] == "train"]
    updates = records(dep.ledger, kind="update", task=train2[0].task)
    assert sorted(u.org for u in updates) == ["org1", "org2"]
    _audit_ok(dep)


def test_org_that_restarts_rejoins_at_the_next_round(deployment: Deployment) -> None:
    dep = deployment
    config = dep.workdir / "fedchain.toml"
    config.write_text('[run_config]\n"min-nodes" = 3\n')  # the strategy samples all three orgs
    agg, clients, address = dep.start(
        {"org1": None, "org2": None, "org3": HANG},
        rounds=3, deadline=DEADLINE, extra=("--config", str(config)),
    )  # fmt: skip
    clients["org3"].event("app", state="training", round=2)
    killed_at = time.monotonic()
    clients["org3"].kill()
    selected = agg.wait_event(
        lambda e: e.get("event") == "selected" and str(e.get("task")).startswith("r2.train")
    )
    assert selected["selected"] == ["org1", "org2"]
    assert selected["at"] - killed_at < DEADLINE / 2

    again = dep.client("org3", address, app=HANG, name="org3-again")  # the same command
    agg.expect_exit(0)
    for proc in (clients["org1"], clients["org2"], again):
        proc.expect_exit(0)

    rounds = closes(dep.ledger)
    assert sorted(rounds) == [1, 2, 3]
    assert by_org(rounds[2]["dropouts"], "stage") == {"org3": "train"}
    assert sorted(by_org(rounds[3]["aggregated"], "update_sha256")) == ["org1", "org2", "org3"]
    # the restarted org3 did not answer round 2's training task, settled while it was down
    train2 = [t for t in records(dep.ledger, kind="task", round=2) if t["type"] == "train"]
    assert not records(dep.ledger, kind="update", task=train2[0].task, org="org3")
    train3 = [t for t in records(dep.ledger, kind="task", round=3) if t["type"] == "train"]
    assert "org3" in {r["org"] for r in train3[0]["recipients"]}
    (update,) = records(dep.ledger, kind="update", task=train3[0].task, org="org3")
    assert update["status"] == "ok"
    assert by_org(rounds[3]["aggregated"], "update_sha256")["org3"] == update["update_sha256"]
    _audit_ok(dep)


def test_aggregator_killed_mid_run_resumes_from_the_last_closed_round(
    deployment: Deployment,
) -> None:
    dep = deployment
    address = f"127.0.0.1:{free_port()}"
    agg = dep.server(rounds=4, address=address, deadline=DEADLINE)
    run = agg.event("listening")["run"]
    clients = {org: dep.client(org, address) for org in ("org1", "org2")}
    clients["org3"] = dep.client(
        "org3", address, app=GATED, stdin=True, env={"TEST_GATE_ROUND": "3"}
    )
    clients["org3"].event("app", state="waiting", round=3)  # round 3 cannot close meanwhile
    agg.kill()  # kill -9 during round 3
    clients["org3"].tell("go")  # org3 answers the dead aggregator's task: never aggregated

    again = dep.server(rounds=4, address=address, deadline=DEADLINE)  # the same command
    assert again.event("listening")["run"] == run  # the unfinished run is resumed
    again.expect_exit(0)
    for proc in clients.values():
        proc.expect_exit(0)

    rounds = closes(dep.ledger, run)  # fails if a round was closed twice
    assert sorted(rounds) == [1, 2, 3, 4]
    assert len(records(dep.ledger, kind="run", run=run)) == 1
    train3 = [t for t in records(dep.ledger, kind="task", run=run, round=3) if t["type"] == "train"]
    assert len(train3) == 2  # the killed aggregator's task, then the resumed one
    assert [t["model_sha256"] for t in train3] == [rounds[2]["model_sha256"]] * 2
    orphaned, resumed = (
        {u.org: u["update_sha256"] for u in records(dep.ledger, kind="update", task=t.task)}
        for t in train3
    )
    assert sorted(orphaned) == sorted(resumed) == ["org1", "org2", "org3"]
    assert by_org(rounds[3]["aggregated"], "update_sha256") == resumed
    assert not set(orphaned.values()) & set(resumed.values())
    for rnd, close in rounds.items():  # the apps saw the ledger's round numbers throughout
        assert close["metrics"]["server-round"] == rnd
    assert rounds[4]["model_sha256"] not in {rounds[r]["model_sha256"] for r in (1, 2, 3)}
    _audit_ok(dep)


class _Lock:
    """An exclusive SQLite lock on the ledger file, held from the test's own connection."""

    def __init__(self, ledger: Path) -> None:
        self.conn = sqlite3.connect(ledger, timeout=30, isolation_level=None)

    def __enter__(self) -> _Lock:
        self.conn.execute("BEGIN EXCLUSIVE")
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


def test_ledger_briefly_locked_delays_but_loses_nothing(deployment: Deployment) -> None:
    dep = deployment
    dep.env["FEDCHAIN_LEDGER__BUSY_TIMEOUT_S"] = "0.1"  # give up on a held lock quickly
    agg = dep.server(rounds=3, deadline=DEADLINE)
    address = str(agg.event("listening")["address"])
    with _Lock(dep.ledger):  # the aggregator cannot write the run record nor the first task
        clients = {org: dep.client(org, address) for org in ("org1", "org2")}
        clients["org3"] = dep.client(
            "org3", address, app=GATED, stdin=True, env={"TEST_GATE_ROUND": "2"}
        )
        retry = agg.wait_err("ledger unavailable while trying to")
    assert "retry 1/" in retry

    clients["org3"].event("app", state="waiting", round=2)
    with _Lock(dep.ledger):  # org3 finishes training while the ledger is locked
        clients["org3"].tell("go")
        retry = clients["org3"].wait_err("ledger unavailable while trying to announce an update")
    assert "retry 1/" in retry

    agg.expect_exit(0)
    for proc in clients.values():
        proc.expect_exit(0)
    rounds = closes(dep.ledger)
    assert sorted(rounds) == [1, 2, 3]
    for rnd in rounds.values():  # every update made it, none was dropped
        assert sorted(by_org(rnd["aggregated"], "update_sha256")) == ["org1", "org2", "org3"]
        assert rnd["dropouts"] == []
    _audit_ok(dep)
