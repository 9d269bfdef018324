"""Issue 12, points 1 and 2: a member's reply metadata and array bytes cannot crash, freeze or
poison the federation. Real ``fedchain-server`` / ``fedchain-client`` processes, real mTLS on
127.0.0.1, a real embedded ledger file.

org2 runs ``tests.apps.misbehaving:bad_metadata``: in each of 12 rounds it sends one defect
(``num-examples`` NaN, Inf, negative, missing, a list; an extra or a list-valued metric; two
MetricRecords; two ArrayRecords or none; float32-declared complex64 or float64 bytes). Before,
the first froze the model at NaN and eight made ``fedchain-server`` exit 1. Now each is refused
with its reason on the ledger, org1 and org3's round closes, and every global model is the one a
run of org1 and org3 alone produces, hash for hash.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.apps.misbehaving import BAD_METADATA
from tests.integration.runtime_support import Deployment, by_org, closes, records

from fedchain.runtime.arrays import load_model

pytestmark = pytest.mark.slow

BAD_METADATA_APP = "tests.apps.misbehaving:bad_metadata"
ROUNDS = len(BAD_METADATA)


@dataclasses.dataclass
class Runs:
    attacked: Deployment
    closes: dict[int, Any]
    honest: dict[int, Any]  # the closes of org1 and org3 alone


def _run(dep: Deployment, apps: dict[str, str | None]) -> dict[int, Any]:
    """Run ``ROUNDS`` rounds with ``apps``; every process must exit 0 by itself."""
    agg, clients, _ = dep.start(apps, rounds=ROUNDS, min_nodes=len(apps))
    agg.expect_exit(0)  # the aggregator never exits because of a reply
    for proc in clients.values():
        proc.expect_exit(0)
    return closes(dep.ledger)


@pytest.fixture(scope="module")
def runs(consortium_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    attacked = Deployment(pki=consortium_dir, workdir=tmp_path_factory.mktemp("attacked"))
    honest = Deployment(pki=consortium_dir, workdir=tmp_path_factory.mktemp("honest"))
    try:
        bad = _run(attacked, {"org1": None, "org2": BAD_METADATA_APP, "org3": None})
        good = _run(honest, {"org1": None, "org3": None})
        yield Runs(attacked, bad, good)
    finally:
        attacked.stop_all()
        honest.stop_all()


@pytest.mark.parametrize("rnd", sorted(BAD_METADATA))
def test_each_malformed_reply_is_refused_with_its_reason(runs: Runs, rnd: int) -> None:
    close = runs.closes[rnd]
    rejected = by_org(close["rejected"], "reason")
    assert re.search(BAD_METADATA[rnd][0], rejected.get("org2", "")), rejected
    assert sorted(by_org(close["aggregated"], "update_sha256")) == ["org1", "org3"]
    assert close["dropouts"] == []
    # it reached the aggregator as an ``ok`` update: only the aggregator's checks caught it
    (task,) = [t for t in records(runs.attacked.ledger, kind="task", round=rnd)
               if t["type"] == "train"]  # fmt: skip
    (update,) = records(runs.attacked.ledger, kind="update", task=task.task, org="org2")
    assert update["status"] == "ok"


def test_every_model_equals_the_run_without_the_attacker(runs: Runs) -> None:
    assert sorted(runs.closes) == sorted(runs.honest) == list(range(1, ROUNDS + 1))
    attacked = [runs.closes[r]["model_sha256"] for r in sorted(runs.closes)]
    honest = [runs.honest[r]["model_sha256"] for r in sorted(runs.honest)]
    assert attacked == honest
    assert len(set(attacked)) == ROUNDS  # each round moved the model
    final = load_model(runs.attacked.models, attacked[-1]).to_numpy_ndarrays()
    assert [(a.dtype, a.shape) for a in final] == [(np.float32, (16, 8)), (np.float32, (8,))]
    assert all(np.isfinite(a).all() for a in final)
