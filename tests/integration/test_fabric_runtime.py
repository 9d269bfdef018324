"""Training on a REAL Fabric network end to end: ``fedchain demo --ledger fabric`` runs
``fedchain-server`` and one ``fedchain-client`` per organization as real processes, each
configured by the fedchain.toml that ``fabric-network/network.sh up`` wrote, each signing its
transactions with its own identity through its own organization's peer. Then ``fedchain audit
--config`` replays the channel, ``fedchain ledger show --config`` lists it, and a third party
reads it back independently. Last, the run survives failures: an aggregator killed
(``kill -9``) mid-run and started again with the same command resumes the run from the channel,
and a peer killed mid-run and restarted does not stop the run.

The network comes from ``tests/fabric_support/real.py`` (skipped without one; a failure under
``FEDCHAIN_REQUIRE_FABRIC=1``). Runs share the network's channel and chaincode, each under its
own run id, as runs of one consortium do.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.fabric_support.real import RealNetwork
from tests.integration.runtime_support import (
    ROOT,
    TINY_CLIENT,
    TINY_SERVER,
    WAIT,
    Proc,
    by_org,
    child_env,
    free_port,
)
from tests.process_support import until

from fedchain.config import load_settings
from fedchain.ledger import Entry, Query, Record
from fedchain.ledger.factory import open_for_reading
from fedchain.ledger.replay import replay

pytest_plugins = ["tests.fabric_support.real"]
pytestmark = [pytest.mark.slow, pytest.mark.fabric]

BIN = Path(sys.executable).parent
ORGS = ["org1", "org2", "org3"]  # fabric-network/topology.env
ROUNDS = 2
Summary = dict[str, Any]  # the demo's final JSON line


@pytest.fixture(scope="module")
def tomls(real_network: RealNetwork) -> Path:
    """The fedchain.toml files ``network.sh up`` wrote: the aggregator's and one per org."""
    assert sorted(p.stem for p in real_network.tomls.glob("*.toml")) == ["aggregator", *ORGS]
    return real_network.tomls


def fedchain(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    argv = [str(BIN / "fedchain"), *map(str, args)]
    return subprocess.run(
        argv, capture_output=True, text=True, env=child_env(), cwd=cwd, timeout=WAIT * 4
    )


@pytest.fixture(scope="module")
def demo(tomls: Path, tmp_path_factory: pytest.TempPathFactory) -> Summary:
    workdir = tmp_path_factory.mktemp("demo") / "demo"
    result = fedchain("demo", "--ledger", "fabric", "--network", tomls, "--rounds", str(ROUNDS),
                      "--workdir", workdir, "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary: Summary = json.loads(result.stdout.strip().splitlines()[-1])
    summary["workdir"] = workdir
    return summary


CHAINCODE_ENV = "FEDCHAIN_LEDGER__FABRIC__CHAINCODE"


def channel_entries(
    tomls: Path, org: str, chaincode: str | None = None, **query: Any
) -> list[Entry]:
    """Entries of the channel matching ``Query(**query)``, read as ``org`` (its fedchain.toml),
    from the network's chaincode or the given one."""
    env = {CHAINCODE_ENV: chaincode} if chaincode else {}
    reader = open_for_reading(load_settings(tomls / f"{org}.toml", env=env))
    try:
        return reader.metadata_get(Query(**query))
    finally:
        reader.close()


def read_channel(tomls: Path, chaincode: str | None = None, **query: Any) -> list[Record]:
    """Records of the channel matching ``Query(**query)``, read as org2."""
    return [e.record for e in channel_entries(tomls, "org2", chaincode, **query)]


class Training:
    """``fedchain-server`` and ``fedchain-client`` processes on the network's fedchain.toml
    files (a free aggregator port, 3 rounds of the tiny app), on the network's chaincode or
    under another chaincode name; all killed by ``stop()``."""

    def __init__(self, tomls: Path, logs: Path, chaincode: str | None = None) -> None:
        self.tomls, self.logs = tomls, logs
        self.env = {CHAINCODE_ENV: chaincode} if chaincode else {}
        self.address = f"127.0.0.1:{free_port()}"
        self.procs: list[Proc] = []

    def _start(self, name: str, module: str, *args: str, stdin: bool = False, **env: str) -> Proc:
        argv = [sys.executable, "-m", module, *args, "--json"]
        self.procs.append(Proc(name, argv, self.logs, child_env(**self.env, **env), stdin))
        return self.procs[-1]

    def aggregator(self) -> Proc:  # the same command every time
        return self._start(
            "aggregator", "fedchain.cli.server", "--config", str(self.tomls / "aggregator.toml"),
            "--models", str(self.logs / "models"), "--address", self.address, "--rounds", "3",
            "--deadline", "40", "--min-nodes", "3", "--app", TINY_SERVER,
        )  # fmt: skip

    def client(self, org: str, app: str, stdin: bool = False, **env: str) -> Proc:
        return self._start(
            org, "fedchain.cli.client", "--config", str(self.tomls / f"{org}.toml"), "--server",
            self.address, "--exit-when-done", "--app", app, stdin=stdin, **env,
        )  # fmt: skip

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()


def test_demo_trains_every_org_on_the_fabric_channel(demo: Summary) -> None:
    assert demo["event"] == "result"
    assert demo["audit_ok"] is True, demo["problems"]
    assert "write rules" in demo["verified"]
    assert "Fabric channel 'fedchain'" in demo["ledger"]
    assert demo["explorer"].startswith("fedchain explorer --config ")  # a member's view of it
    assert [r["round"] for r in demo["rounds"]] == list(range(1, ROUNDS + 1))
    for row in demo["rounds"]:
        assert sorted(row["participants"]) == ORGS
        assert set(row["num_examples"]) == set(ORGS)
        assert row["model_sha256"]
    assert demo["accuracy"] > demo["baseline"] - 0.3


def test_the_channel_records_the_run_as_each_org_wrote_it(
    tomls: Path, demo: Summary
) -> None:
    """Read back independently as org3: every record of the run is signed by the org it
    names, the write rules hold, and the global models on disk match their ledger hashes."""
    entries = channel_entries(tomls, "org3")
    run_entries = channel_entries(tomls, "org3", run=demo["run"])
    rows = [r for r in replay(entries) if r.run == demo["run"]]
    assert [r.round for r in rows] == list(range(1, ROUNDS + 1))
    writers = {e.signer for e in run_entries}
    assert writers == set(ORGS)  # the aggregator's org and every organization wrote as itself
    assert all(e.record.org == e.signer for e in run_entries)
    models = Path(demo["workdir"]) / "models"
    for row in rows:
        assert row.model_sha256 is not None
        data = (models / f"{row.model_sha256}.bin").read_bytes()
        assert hashlib.sha256(data).hexdigest() == row.model_sha256


def test_each_close_but_the_last_shares_a_transaction_with_the_next_train_task(
    tomls: Path, demo: Summary
) -> None:
    """One block interval saved per round: the close waits for the next round's tasks."""
    entries = channel_entries(tomls, "org2", run=demo["run"])
    tx_of = {(e.record.kind, e.record.round, e.record.data.get("type")): e.hash.split(":")[0]
             for e in entries if e.record.kind in ("close", "task")}  # fmt: skip
    for rnd in range(1, ROUNDS):
        assert tx_of["close", rnd, None] == tx_of["task", rnd + 1, "train"], rnd
    last_close = tx_of["close", ROUNDS, None]
    assert [e.record.kind for e in entries if e.hash.startswith(last_close)] == ["close"]


def test_audit_config_replays_the_fabric_channel(tomls: Path, demo: Summary) -> None:
    result = fedchain("audit", "--config", tomls / "org2.toml", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    ours = [r for r in report["rounds"] if r["run"] == demo["run"]]
    assert [r["model_sha256"] for r in ours] == [r["model_sha256"] for r in demo["rounds"]]


def test_audit_config_checks_the_model_files_and_fails_on_an_altered_one(
    tomls: Path, demo: Summary, tmp_path: Path
) -> None:
    """``audit --config --models`` on the Fabric channel checks the model files against the
    hashes the channel records: the demo's models verify; one with a byte appended fails the
    audit, naming the file."""
    models = Path(demo["workdir"]) / "models"
    result = fedchain("audit", "--config", tomls / "org2.toml", "--models", models, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["models"]["mismatched"] == []
    ours = {r["model_sha256"] for r in demo["rounds"]}
    assert ours <= set(report["models"]["verified"])

    altered = tmp_path / "models"
    altered.mkdir()
    for model in models.iterdir():
        (altered / model.name).write_bytes(model.read_bytes())
    victim = altered / f"{demo['rounds'][-1]['model_sha256']}.bin"
    with victim.open("ab") as fh:
        fh.write(b"\0")
    result = fedchain("audit", "--config", tomls / "org3.toml", "--models", altered)
    assert result.returncode == 1
    assert f"differ from their ledger hash: {victim.name}" in result.stderr, result.stderr
    as_json = fedchain("audit", "--config", tomls / "org3.toml", "--models", altered, "--json")
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["ok"] is False
    assert report["models"]["mismatched"] == [victim.name.removesuffix(".bin")]


def test_ledger_show_config_lists_the_channel_records(tomls: Path, demo: Summary) -> None:
    shown = fedchain("ledger", "show", "--config", tomls / "org3.toml", "--run", demo["run"],
                     "--kind", "close", "--json")  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    closes = json.loads(shown.stdout)
    assert [c["record"]["round"] for c in closes] == list(range(1, ROUNDS + 1))
    assert {c["signer"] for c in closes} == {"org1"}  # the aggregator's organization closes
    assert [c["record"]["model_sha256"] for c in closes] == [
        r["model_sha256"] for r in demo["rounds"]
    ]
    table = fedchain("ledger", "show", "--config", tomls / "org3.toml", "--run", demo["run"])
    assert table.returncode == 0, table.stderr
    assert "Fabric channel 'fedchain'" in table.stdout


def test_the_demo_s_progress_line_names_the_round_never_none(
    tomls: Path, tmp_path: Path
) -> None:
    """As people see it (no --json): the progress line the demo leaves behind is the last
    round's, with the ledger checked (the run-wide events carry no round of their own)."""
    result = fedchain("demo", "--ledger", "fabric", "--network", tomls, "--rounds", "1",
                      "--workdir", tmp_path / "demo")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "round None" not in result.stderr
    assert "demo: round 1 · ledger checked" in result.stderr


def test_a_misspelt_channel_is_one_line_in_seconds(tomls: Path, tmp_path: Path) -> None:
    """The peer answers UNAVAILABLE for a channel it does not have; that is no outage to ride
    out (it was retried for ~26 s), but a setting to fix."""
    config = tmp_path / "org2.toml"
    text = (tomls / "org2.toml").read_text()
    assert 'channel = "fedchain"' in text
    config.write_text(text.replace('channel = "fedchain"', 'channel = "fedchian"'))
    started = time.monotonic()
    result = fedchain("ledger", "show", "--config", config)
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "fedchian" in lines[0]
    assert elapsed < 20, elapsed  # start-up included; the outage budget alone is ~26 s


def test_demo_without_a_network_says_how_to_start_one(tmp_path: Path) -> None:
    result = fedchain("demo", "--ledger", "fabric", "--network", tmp_path / "none",
                      "--workdir", tmp_path / "demo")  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "network.sh up" in result.stderr
    assert not (tmp_path / "demo").exists()  # nothing was prepared for a run that cannot start


# -- an aggregator killed mid-run resumes from the channel -----------------------------------


def test_aggregator_killed_on_fabric_resumes_the_run_from_the_channel(
    tomls: Path, demo: Summary, tmp_path: Path
) -> None:
    """The channel already holds the demo's finished run: the clients, started without
    ``--run``, must not take it for theirs and exit at once."""
    assert read_channel(tomls, kind="close", run=demo["run"])
    training = Training(tomls, tmp_path)
    try:
        agg = training.aggregator()
        run = agg.event("listening")["run"]
        clients = [training.client("org1", TINY_CLIENT), training.client("org2", TINY_CLIENT)]
        gated = training.client("org3", "tests.apps.misbehaving:gated", stdin=True,
                                TEST_GATE_ROUND="2")  # fmt: skip
        gated.event("app", state="waiting", round=2)  # round 2 cannot close meanwhile
        agg.kill()
        gated.tell("go")  # answers the dead aggregator's task: never aggregated
        again = training.aggregator()
        assert again.event("listening")["run"] == run  # the unfinished run, found on the channel
        again.expect_exit(0)
        for proc in (*clients, gated):
            proc.expect_exit(0)
    finally:
        training.stop()

    closes = {int(r["round"]): r for r in read_channel(tomls, kind="close", run=run)}
    assert sorted(closes) == [1, 2, 3]  # each round closed exactly once (else keys would clash)
    assert len(read_channel(tomls, kind="close", run=run)) == 3
    train2 = [t for t in read_channel(tomls, kind="task", run=run, round=2) if t["type"] == "train"]
    assert len(train2) == 2  # the killed aggregator's task, then the resumed one
    assert [t["model_sha256"] for t in train2] == [closes[1]["model_sha256"]] * 2
    resumed = {
        u.org: u["update_sha256"] for u in read_channel(tomls, kind="update", task=train2[1].task)
    }
    assert sorted(resumed) == ORGS
    assert by_org(closes[2]["aggregated"], "update_sha256") == resumed


def test_secure_demo_on_fabric_anchors_keys_on_the_channel(tomls: Path, tmp_path: Path) -> None:
    """Secure aggregation over a Fabric ledger: every organization anchors its key-agreement
    public keys on the channel, and the round closes with all three organizations."""
    result = fedchain("demo", "--ledger", "fabric", "--network", tomls, "--secure", "--rounds",
                      "1", "--workdir", tmp_path / "demo", "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["audit_ok"] is True, summary["problems"]
    (row,) = summary["rounds"]
    assert sorted(row["participants"]) == ORGS
    keys = read_channel(tomls, kind="keys", run=summary["run"])
    assert {k.org for k in keys} == set(ORGS)


def test_demo_on_fabric_refuses_orgs(tomls: Path, tmp_path: Path) -> None:
    result = fedchain("demo", "--ledger", "fabric", "--network", tomls, "--orgs", "5",
                      "--workdir", tmp_path / "demo")  # fmt: skip
    assert result.returncode == 1
    assert "--orgs applies to the embedded ledger" in result.stderr
    assert not (tmp_path / "demo").exists()


# -- a peer killed mid-run and restarted --------------------------------------------------------


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    assert until(condition, timeout, poll=0.2), f"timed out waiting for {what}"


def test_a_peer_killed_mid_run_and_restarted_does_not_stop_the_run(
    real_network: RealNetwork, tomls: Path, tmp_path: Path
) -> None:
    """org1's peer (the aggregator's and org1's gateway) is killed with ``kill -9`` while
    round 2 waits for org3; org3 answers through its own peer meanwhile (org2 and org3 still
    make the MAJORITY), the peer is started again, and the run closes all its rounds: the
    aggregator and org1 ride out the outage (retries, event streams reopened). On a chaincode
    name of its own, so that no unfinished run of another test is taken for this one's."""
    peer = f"{real_network.topology['PEER_NAME']}.{real_network.aggregator_org}"
    namespace = real_network.namespace()
    training = Training(tomls, tmp_path, chaincode=namespace)
    try:
        agg = training.aggregator()
        run = agg.event("listening")["run"]
        clients = [training.client("org1", TINY_CLIENT), training.client("org2", TINY_CLIENT)]
        gated = training.client("org3", "tests.apps.misbehaving:gated", stdin=True,
                                TEST_GATE_ROUND="2")  # fmt: skip
        gated.event("app", state="waiting", round=2)
        real_network.kill(peer)
        gated.tell("go")
        _wait_for(lambda: any(u.org == "org3" for u in read_channel(
                      tomls, namespace, kind="update", run=run, round=2)),
                  "org3's round-2 update on the channel (read through org2's peer)")  # fmt: skip
        assert real_network.pid(peer) is None  # the write went through while the peer was down
        real_network.start()
        assert real_network.pid(peer) is not None
        agg.expect_exit(0)
        for proc in (*clients, gated):
            proc.expect_exit(0)
    finally:
        training.stop()
        if real_network.pid(peer) is None:
            real_network.start()  # leave the network whole for the next test
    closes = {int(r["round"]): r for r in read_channel(tomls, namespace, kind="close", run=run)}
    assert sorted(closes) == [1, 2, 3]
    assert sorted(by_org(closes[2]["aggregated"], "update_sha256")) == ORGS
