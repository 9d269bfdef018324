"""End to end through the real runtime, as separate processes: ``fedchain-server`` with the
built-in secure app and five ``fedchain-client`` processes over mTLS on 127.0.0.1 with the
embedded ledger. One organization is killed after it sent its masked update, another before.

The round must still produce the FedAvg model of the four organizations whose masked updates
were sent (within the quantization bound), the ``close`` record must list exactly their masked
updates and each dropout with its stage, and the ledger must pass the audit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord
from flwr.serverapp.strategy import FedAvg

from fedchain.examples import digits
from fedchain.examples.digits_data import partition
from fedchain.examples.digits_model import init_params
from fedchain.flower import LocalGrid
from fedchain.ledger import Query
from fedchain.ledger.audit import audit
from fedchain.ledger.embedded import EmbeddedLedger
from fedchain.pki import init_consortium
from fedchain.runtime.arrays import load_model
from fedchain.secagg import error_bound
from tests.integration.test_secagg_ledger import MAX_WEIGHT

ORGS = [f"org{i}" for i in range(1, 6)]
KILLED = {"org2": "unmask", "org4": "collect_masked"}  # after / before the masked update
REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _spawn(module: str, args: list[str], log: Path, kill_at: str = "") -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "FEDCHAIN_TEST_KILL_AT": kill_at,
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", module, *args, "--json"], cwd=log.parent,
                            stdout=subprocess.PIPE, stderr=log.open("w"), text=True, env=env)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def _listening(server: subprocess.Popen[str]) -> str:
    assert server.stdout is not None
    for line in server.stdout:
        event = json.loads(line)
        if event.get("event") == "listening":
            return str(event["address"])
    raise AssertionError("the aggregator exited before listening")


def _expected_model(contributors: list[str]) -> ArrayRecord:
    """Plain FedAvg of the contributors' first round, computed here with the same app."""
    nodes = {ORGS.index(org): digits.client_app for org in contributors}
    grid = LocalGrid(nodes, node_config=lambda n: {"partition-id": n, "num-partitions": len(ORGS)})
    strategy = FedAvg(min_available_nodes=len(nodes), fraction_evaluate=0.0)
    result = strategy.start(grid=grid, initial_arrays=ArrayRecord(init_params(0)), num_rounds=1,
                            train_config=ConfigRecord({"lr": 0.2, "epochs": 5, "batch": 32}))
    return result.arrays


def test_secure_round_survives_organizations_killed_before_and_after_masking(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    pki, ledger, models = tmp_path / "pki", tmp_path / "ledger.sqlite", tmp_path / "models"
    init_consortium(pki, consortium="e2e", orgs=ORGS, aggregator="org1")
    common = ["--pki", str(pki), "--ledger", str(ledger)]
    server = _spawn("fedchain.cli.server", [
        *common, "--models", str(models), "--address", "127.0.0.1:0", "--rounds", "1",
        "--min-nodes", str(len(ORGS)), "--deadline", "60",
        "--app", "fedchain.examples.digits:secure_server_app"], tmp_path / "aggregator.log")
    processes.append(server)
    address = _listening(server)
    for org in ORGS:
        processes.append(_spawn("fedchain.cli.client", [
            *common, "--org", org, "--server", address, "--exit-when-done",
            "--app", "tests.integration.secagg_kill_app:app"], tmp_path / f"{org}.log",
            kill_at=KILLED.get(org, "")))
    assert server.wait(timeout=120) == 0, (tmp_path / "aggregator.log").read_text()[-3000:]
    codes = {org: proc.wait(timeout=30) for org, proc in zip(ORGS, processes[1:], strict=True)}
    assert codes == {org: 17 if org in KILLED else 0 for org in ORGS}

    with EmbeddedLedger.open(ledger) as book:
        entries = book.metadata_get(Query(round=1))
    records = [e.record for e in entries]
    (close,) = [r for r in records if r.kind == "close"]
    masked_task = next(r for r in records if r.kind == "task" and r["model_sha256"] is not None)
    announced = {r.org: r["update_sha256"] for r in records
                 if r.kind == "update" and r.task == masked_task.task}
    contributors = ["org1", "org2", "org3", "org5"]
    assert sorted(announced) == contributors  # org4 died before sending its masked update
    assert close["aggregated"] == [{"org": o, "update_sha256": announced[o]} for o in contributors]
    assert close["dropouts"] == [{"org": "org2", "stage": "secagg.unmask"},
                                 {"org": "org4", "stage": "secagg.collect_masked"}]
    assert {r.org for r in records if r.kind == "keys"} == set(ORGS)

    got = load_model(models, close["model_sha256"])
    want = _expected_model(contributors)
    total = sum(len(partition(ORGS.index(o), len(ORGS))[0].y) for o in contributors)
    bound = error_bound(len(ORGS), 8.0, MAX_WEIGHT) / total + 1e-6
    for key in want:
        assert float(np.abs(got[key].numpy() - want[key].numpy()).max()) <= bound
    assert audit(ledger, models_dir=models).ok
