"""Issue 12, point 5, end to end: one member sending undecryptable share boxes to all its
neighbours cannot veto a secure round. Real ``fedchain-server`` (built-in secure app) and five
``fedchain-client`` processes over mTLS on 127.0.0.1 with the embedded ledger; org3 runs
``tests.integration.secagg_garble_app``.

Before, every honest organization failed on org3's box and the round aborted with
TooManyDropouts. Now the honest four accuse org3, the round completes with exactly their
FedAvg model (within the quantization bound), and the ``close`` record refuses org3 naming its
accusers; the ledger passes the audit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.integration.runtime_support import Deployment
from tests.integration.runtime_support import records as ledger_records
from tests.integration.test_secagg_e2e import ORGS, _expected_model
from tests.integration.test_secagg_ledger import MAX_WEIGHT

from fedchain.examples.digits_data import partition
from fedchain.ledger.audit import audit
from fedchain.pki import init_consortium
from fedchain.runtime.arrays import load_model
from fedchain.secagg import error_bound

pytestmark = pytest.mark.slow
BAD = "org3"
HONEST = [org for org in ORGS if org != BAD]


def test_a_member_sending_bad_share_boxes_is_left_out_and_the_round_completes(
    tmp_path: Path,
) -> None:
    init_consortium(tmp_path / "pki", consortium="e2e", orgs=ORGS, aggregator="org1")
    dep = Deployment(pki=tmp_path / "pki", workdir=tmp_path)
    try:
        agg = dep.server(rounds=1, min_nodes=len(ORGS), deadline=60,
                         app="fedchain.examples.digits:secure_server_app")  # fmt: skip
        address = str(agg.event("listening")["address"])
        garble = "tests.integration.secagg_garble_app:app"
        clients = {org: dep.client(org, address, app=garble if org == BAD else
                                   "tests.integration.secagg_kill_app:app")
                   for org in ORGS}  # fmt: skip
        agg.expect_exit(0)
        for proc in clients.values():
            proc.expect_exit(0)
    finally:
        dep.stop_all()
    ledger, models = dep.ledger, dep.models

    records = ledger_records(ledger, round=1)
    (close,) = [r for r in records if r.kind == "close"]
    masked_task = next(r for r in records if r.kind == "task" and r["model_sha256"] is not None)
    announced = {r.org: r["update_sha256"] for r in records
                 if r.kind == "update" and r.task == masked_task.task}  # fmt: skip
    assert BAD in announced  # org3 sent a masked update; it is not in the sum
    assert close["aggregated"] == [{"org": o, "update_sha256": announced[o]} for o in HONEST]
    (refused,) = close["rejected"]
    assert refused["org"] == BAD
    assert refused["reason"].startswith(
        f"secagg.misbehaving: its share boxes did not open for {', '.join(HONEST)}"
    )
    assert close["model_sha256"] is not None

    got = load_model(models, close["model_sha256"])
    want = _expected_model(HONEST)
    total = sum(len(partition(ORGS.index(o), len(ORGS))[0].y) for o in HONEST)
    bound = error_bound(len(ORGS), 8.0, MAX_WEIGHT) / total + 1e-6
    for key in want:
        assert float(np.abs(got[key].numpy() - want[key].numpy()).max()) <= bound
    assert audit(ledger, models_dir=models).ok
