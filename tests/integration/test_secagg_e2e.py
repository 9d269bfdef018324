"""End to end through the real runtime, as separate processes: ``fedchain-server`` with the
built-in secure app and five ``fedchain-client`` processes over mTLS on 127.0.0.1 with the
embedded ledger. One organization is killed after it sent its masked update, another before.

The round must still produce the FedAvg model of the four organizations whose masked updates
were sent (within the quantization bound), the ``close`` record must list exactly their masked
updates and each dropout with its stage, and the ledger must pass the audit.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord
from flwr.serverapp.strategy import FedAvg
from tests.integration.runtime_support import Deployment
from tests.integration.runtime_support import records as ledger_records
from tests.integration.test_secagg_ledger import MAX_WEIGHT

from fedchain.examples import digits
from fedchain.examples.digits_data import partition
from fedchain.examples.digits_model import init_params
from fedchain.flower import LocalGrid
from fedchain.ledger import Record
from fedchain.ledger.audit import audit
from fedchain.pki import init_consortium
from fedchain.runtime.arrays import load_model
from fedchain.secagg import error_bound

ORGS = [f"org{i}" for i in range(1, 6)]
KILLED = {"org2": "unmask", "org4": "collect_masked"}  # after / before the masked update
pytestmark = pytest.mark.slow


def _expected_model(contributors: list[str]) -> ArrayRecord:
    """Plain FedAvg of the contributors' first round, computed here with the same app."""
    nodes = {ORGS.index(org): digits.client_app for org in contributors}
    grid = LocalGrid(nodes, node_config=lambda n: {"partition-id": n, "num-partitions": len(ORGS)})
    strategy = FedAvg(min_available_nodes=len(nodes), fraction_evaluate=0.0)
    result = strategy.start(grid=grid, initial_arrays=ArrayRecord(init_params(0)), num_rounds=1,
                            train_config=ConfigRecord({"lr": 0.2, "epochs": 5, "batch": 32}))
    return result.arrays


KILL_APP = "tests.integration.secagg_kill_app:app"


def run_secure_round(
    tmp_path: Path, app_of: Callable[[str], str], env_of: Callable[[str], dict[str, str]],
    exit_of: Callable[[str], int],
) -> Deployment:  # fmt: skip
    """One secure round of the built-in secure app over the five organizations, as real
    processes; each org runs ``app_of(org)`` and must exit with ``exit_of(org)``."""
    init_consortium(tmp_path / "pki", consortium="e2e", orgs=ORGS, aggregator="org1")
    dep = Deployment(pki=tmp_path / "pki", workdir=tmp_path)
    try:
        agg = dep.server(rounds=1, min_nodes=len(ORGS), deadline=60,
                         app="fedchain.examples.digits:secure_server_app")  # fmt: skip
        address = str(agg.event("listening")["address"])
        clients = {org: dep.client(org, address, app=app_of(org), env=env_of(org))
                   for org in ORGS}  # fmt: skip
        agg.expect_exit(0)
        for org, proc in clients.items():
            proc.expect_exit(exit_of(org))
    finally:
        dep.stop_all()
    return dep


def masked_updates(records: list[Record]) -> dict[str, str]:
    """Org -> the hash of the masked update it announced for the round's secure task."""
    masked_task = next(r for r in records if r.kind == "task" and r["model_sha256"] is not None)
    return {r.org: r["update_sha256"] for r in records
            if r.kind == "update" and r.task == masked_task.task}  # fmt: skip


def assert_fedavg_of(contributors: list[str], models: Path, close: Record) -> None:
    """The round's model is plain FedAvg of ``contributors`` within the quantization bound."""
    got = load_model(models, close["model_sha256"])
    want = _expected_model(contributors)
    total = sum(len(partition(ORGS.index(o), len(ORGS))[0].y) for o in contributors)
    bound = error_bound(len(ORGS), 8.0, MAX_WEIGHT) / total + 1e-6
    for key in want:
        assert float(np.abs(got[key].numpy() - want[key].numpy()).max()) <= bound


def test_secure_round_survives_organizations_killed_before_and_after_masking(
    tmp_path: Path,
) -> None:
    dep = run_secure_round(
        tmp_path, lambda org: KILL_APP, lambda org: {"FEDCHAIN_TEST_KILL_AT": KILLED.get(org, "")},
        lambda org: 17 if org in KILLED else 0,
    )  # fmt: skip
    ledger, models = dep.ledger, dep.models

    records = ledger_records(ledger, round=1)
    (close,) = [r for r in records if r.kind == "close"]
    announced = masked_updates(records)
    contributors = ["org1", "org2", "org3", "org5"]
    assert sorted(announced) == contributors  # org4 died before sending its masked update
    assert close["aggregated"] == [{"org": o, "update_sha256": announced[o]} for o in contributors]
    assert close["dropouts"] == [{"org": "org2", "stage": "secagg.unmask"},
                                 {"org": "org4", "stage": "secagg.collect_masked"}]
    assert {r.org for r in records if r.kind == "keys"} == set(ORGS)
    assert_fedavg_of(contributors, models, close)
    assert audit(ledger, models_dir=models).ok
