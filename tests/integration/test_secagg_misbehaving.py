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

import pytest
from tests.integration.runtime_support import records as ledger_records
from tests.integration.test_secagg_e2e import (
    KILL_APP,
    ORGS,
    assert_fedavg_of,
    masked_updates,
    run_secure_round,
)

from fedchain.ledger.audit import audit

pytestmark = pytest.mark.slow
BAD = "org3"
HONEST = [org for org in ORGS if org != BAD]


def test_a_member_sending_bad_share_boxes_is_left_out_and_the_round_completes(
    tmp_path: Path,
) -> None:
    garble = "tests.integration.secagg_garble_app:app"
    dep = run_secure_round(
        tmp_path, lambda org: garble if org == BAD else KILL_APP, lambda org: {}, lambda org: 0
    )
    ledger, models = dep.ledger, dep.models

    records = ledger_records(ledger, round=1)
    (close,) = [r for r in records if r.kind == "close"]
    announced = masked_updates(records)
    assert BAD in announced  # org3 sent a masked update; it is not in the sum
    assert close["aggregated"] == [{"org": o, "update_sha256": announced[o]} for o in HONEST]
    (refused,) = close["rejected"]
    assert refused["org"] == BAD
    assert refused["reason"].startswith(
        f"secagg.misbehaving: its share boxes did not open for {', '.join(HONEST)}"
    )
    assert_fedavg_of(HONEST, models, close)
    assert audit(ledger, models_dir=models).ok
