"""Training on a Fabric ledger end to end: ``fedchain demo --ledger fabric`` runs
``fedchain-server`` and one ``fedchain-client`` per organization as real processes, each
configured by the fedchain.toml that ``fabric-network/network.sh`` writes, each signing its
transactions with its own identity through its own organization's gateway. The channel is the
stand-in network running the real chaincode process (no Fabric binaries here); the crypto
material is made by ``network.sh crypto`` exactly as for a real network. Then ``fedchain audit
--config`` replays the channel, and a third party reads it back independently. Last, an
aggregator killed (``kill -9``) mid-run and started again with the same command resumes the run
from the channel.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.fabric_support.chaincode import ChaincodeProcess
from tests.fabric_support.network import StandInNetwork
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

from fedchain.config import load_settings
from fedchain.ledger import Entry, Query, Record
from fedchain.ledger.factory import open_for_reading
from fedchain.ledger.replay import replay
from fedchain.pki import load_consortium

pytest_plugins = ["tests.fabric_support.fixtures"]
pytestmark = pytest.mark.slow

NETWORK_SH = ROOT / "fabric-network" / "network.sh"
BIN = Path(sys.executable).parent
ORGS = ["org1", "org2", "org3"]  # fabric-network/topology.env
ROUNDS = 2
Summary = dict[str, Any]  # the demo's final JSON line


def network_sh(*args: str, work: Path) -> str:
    env = child_env(FEDCHAIN_FABRIC_WORK=str(work))
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"  # this interpreter's fedchain command
    result = subprocess.run([str(NETWORK_SH), *args], capture_output=True, text=True, env=env,
                            timeout=WAIT, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def network(
    chaincode_service: ChaincodeProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[StandInNetwork, Path]]:
    """The stand-in channel (every org endorses and hosts a gateway) and the folder of
    fedchain.toml files network.sh writes for it, pointed at the stand-in's gateways."""
    work = tmp_path_factory.mktemp("fabric") / "work"
    network_sh("crypto", work=work)
    pki = work / "pki"
    channel = StandInNetwork(
        pki_dir=pki, consortium=load_consortium(pki), chaincode_address=chaincode_service.address,
        endorsing_orgs=ORGS, batch_timeout=0.02,
    )  # fmt: skip
    tomls = work / "fedchain"
    tomls.mkdir()
    for org, role, name in [("org1", "server", "aggregator"), *((o, "client", o) for o in ORGS)]:
        text = network_sh("toml", org, role, work=work)
        own = f'endpoint = "{channel.endpoints[org]}"'  # the stand-in's port for org's peer
        text, count = re.subn(r'(?m)^endpoint = "127\.0\.0\.1:\d+"$', own, text)
        assert count == 1, text
        (tomls / f"{name}.toml").write_text(text)
    yield channel, tomls
    channel.close()


def fedchain(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    argv = [str(BIN / "fedchain"), *map(str, args)]
    return subprocess.run(
        argv, capture_output=True, text=True, env=child_env(), cwd=cwd, timeout=WAIT * 4
    )


@pytest.fixture(scope="module")
def demo(network: tuple[StandInNetwork, Path], tmp_path_factory: pytest.TempPathFactory) -> Summary:
    _, tomls = network
    workdir = tmp_path_factory.mktemp("demo") / "demo"
    result = fedchain("demo", "--ledger", "fabric", "--network", tomls, "--rounds", str(ROUNDS),
                      "--workdir", workdir, "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary: Summary = json.loads(result.stdout.strip().splitlines()[-1])
    summary["workdir"] = workdir
    return summary


def channel_entries(tomls: Path, org: str, **query: Any) -> list[Entry]:
    """Entries of the channel matching ``Query(**query)``, read as ``org`` (its fedchain.toml)."""
    reader = open_for_reading(load_settings(tomls / f"{org}.toml", env={}))
    try:
        return reader.metadata_get(Query(**query))
    finally:
        reader.close()


def read_channel(tomls: Path, **query: Any) -> list[Record]:
    """Records of the channel matching ``Query(**query)``, read as org2."""
    return [e.record for e in channel_entries(tomls, "org2", **query)]


def test_demo_trains_every_org_on_the_fabric_channel(demo: Summary) -> None:
    assert demo["event"] == "result"
    assert demo["audit_ok"] is True, demo["problems"]
    assert "write rules" in demo["verified"]
    assert "Fabric channel 'fedchain'" in demo["ledger"]
    assert [r["round"] for r in demo["rounds"]] == list(range(1, ROUNDS + 1))
    for row in demo["rounds"]:
        assert sorted(row["participants"]) == ORGS
        assert set(row["num_examples"]) == set(ORGS)
        assert row["model_sha256"]
    assert demo["accuracy"] > demo["baseline"] - 0.3


def test_the_channel_records_the_run_as_each_org_wrote_it(
    network: tuple[StandInNetwork, Path],
    demo: Summary,
) -> None:
    """Read back independently as org3: every record of the run is signed by the org it
    names, the write rules hold, and the global models on disk match their ledger hashes."""
    _, tomls = network
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
    network: tuple[StandInNetwork, Path],
    demo: Summary,
) -> None:
    """One block interval saved per round: the close waits for the next round's tasks."""
    _, tomls = network
    entries = channel_entries(tomls, "org2", run=demo["run"])
    tx_of = {(e.record.kind, e.record.round, e.record.data.get("type")): e.hash.split(":")[0]
             for e in entries if e.record.kind in ("close", "task")}  # fmt: skip
    for rnd in range(1, ROUNDS):
        assert tx_of["close", rnd, None] == tx_of["task", rnd + 1, "train"], rnd
    last_close = tx_of["close", ROUNDS, None]
    assert [e.record.kind for e in entries if e.hash.startswith(last_close)] == ["close"]


def test_audit_config_replays_the_fabric_channel(
    network: tuple[StandInNetwork, Path],
    demo: Summary,
) -> None:
    _, tomls = network
    result = fedchain("audit", "--config", tomls / "org2.toml", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    ours = [r for r in report["rounds"] if r["run"] == demo["run"]]
    assert [r["model_sha256"] for r in ours] == [r["model_sha256"] for r in demo["rounds"]]


def test_ledger_show_config_lists_the_channel_records(
    network: tuple[StandInNetwork, Path], demo: Summary
) -> None:
    _, tomls = network
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
    network: tuple[StandInNetwork, Path], tmp_path: Path
) -> None:
    """As people see it (no --json): the progress line the demo leaves behind is the last
    round's, with the ledger checked (the run-wide events carry no round of their own)."""
    _, tomls = network
    result = fedchain("demo", "--ledger", "fabric", "--network", tomls, "--rounds", "1",
                      "--workdir", tmp_path / "demo")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "round None" not in result.stderr
    assert "demo: round 1 · ledger checked" in result.stderr


def test_demo_without_a_network_says_how_to_start_one(tmp_path: Path) -> None:
    result = fedchain("demo", "--ledger", "fabric", "--network", tmp_path / "none",
                      "--workdir", tmp_path / "demo")  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "network.sh up" in result.stderr
    assert not (tmp_path / "demo").exists()  # nothing was prepared for a run that cannot start


# -- an aggregator killed mid-run resumes from the channel -----------------------------------


def test_aggregator_killed_on_fabric_resumes_the_run_from_the_channel(
    network: tuple[StandInNetwork, Path], demo: Summary, tmp_path: Path
) -> None:
    """The channel already holds the demo's finished run: the clients, started without
    ``--run``, must not take it for theirs and exit at once."""
    _, tomls = network
    assert read_channel(tomls, kind="close", run=demo["run"])
    address, procs = f"127.0.0.1:{free_port()}", []

    def start(name: str, module: str, *args: str, stdin: bool = False, **env: str) -> Proc:
        argv = [sys.executable, "-m", module, *args, "--json"]
        procs.append(Proc(name, argv, tmp_path, child_env(**env), stdin))
        return procs[-1]

    def aggregator() -> Proc:  # the same command both times
        return start(
            "aggregator", "fedchain.cli.server", "--config", str(tomls / "aggregator.toml"),
            "--models", str(tmp_path / "models"), "--address", address, "--rounds", "3",
            "--deadline", "40", "--min-nodes", "3", "--app", TINY_SERVER,
        )  # fmt: skip

    def client(org: str, app: str, stdin: bool = False, **env: str) -> Proc:
        return start(
            org, "fedchain.cli.client", "--config", str(tomls / f"{org}.toml"), "--server",
            address, "--exit-when-done", "--app", app, stdin=stdin, **env,
        )  # fmt: skip

    try:
        agg = aggregator()
        run = agg.event("listening")["run"]
        clients = [client("org1", TINY_CLIENT), client("org2", TINY_CLIENT)]
        gated = client("org3", "tests.apps.misbehaving:gated", stdin=True, TEST_GATE_ROUND="2")
        gated.event("app", state="waiting", round=2)  # round 2 cannot close meanwhile
        agg.kill()
        gated.tell("go")  # answers the dead aggregator's task: never aggregated
        again = aggregator()
        assert again.event("listening")["run"] == run  # the unfinished run, found on the channel
        again.expect_exit(0)
        for proc in (*clients, gated):
            proc.expect_exit(0)
    finally:
        for proc in procs:
            proc.kill()

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


def test_secure_demo_on_fabric_anchors_keys_on_the_channel(
    network: tuple[StandInNetwork, Path], tmp_path: Path
) -> None:
    """Secure aggregation over a Fabric ledger: every organization anchors its key-agreement
    public keys on the channel, and the round closes with all three organizations."""
    _, tomls = network
    result = fedchain("demo", "--ledger", "fabric", "--network", tomls, "--secure", "--rounds",
                      "1", "--workdir", tmp_path / "demo", "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["audit_ok"] is True, summary["problems"]
    (row,) = summary["rounds"]
    assert sorted(row["participants"]) == ORGS
    keys = read_channel(tomls, kind="keys", run=summary["run"])
    assert {k.org for k in keys} == set(ORGS)


def test_demo_on_fabric_refuses_orgs(network: tuple[StandInNetwork, Path], tmp_path: Path) -> None:
    _, tomls = network
    result = fedchain("demo", "--ledger", "fabric", "--network", tomls, "--orgs", "5",
                      "--workdir", tmp_path / "demo")  # fmt: skip
    assert result.returncode == 1
    assert "--orgs applies to the embedded ledger" in result.stderr
    assert not (tmp_path / "demo").exists()
