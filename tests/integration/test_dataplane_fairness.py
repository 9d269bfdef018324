"""Issue 12, point 3: one organization holding 100 idle data-plane calls cannot stall the others.

Real processes: ``fedchain-server``, ``fedchain-client`` for org1 and org2, and org3 as an
attacker (``tests.integration.dataplane_hog``) that keeps 100 ``Upload`` calls open without
ever sending a header, with org3's real TLS identity. Before, 22 such calls took every worker of
the aggregator: org2's ``Ping`` timed out and no round closed. Now org3 holds at most its share
(8 calls), the rest are refused with RESOURCE_EXHAUSTED, held calls are cut after the idle
deadline, org2 is answered and both rounds close with org1 and org2.
"""

from __future__ import annotations

import pytest
from tests.integration.runtime_support import Deployment, by_org, closes

from fedchain.pki import identity_dir, load_consortium, load_identity
from fedchain.transport import DataPlaneClient

pytestmark = pytest.mark.slow

CALLS = 100
PER_ORG = 8


def test_100_idle_calls_of_one_org_leave_the_others_served(deployment: Deployment) -> None:
    dep = deployment
    config = dep.workdir / "fedchain.toml"
    config.write_text(f"[server]\nmax_calls_per_org = {PER_ORG}\nstream_idle_s = 3\n")
    agg = dep.server(rounds=2, min_nodes=2, extra=("--config", str(config)))
    address = str(agg.event("listening")["address"])
    hog = dep.spawn(
        "hog", "tests.integration.dataplane_hog", [str(dep.pki), "org3", address, str(CALLS)],
        None, stdin=True,
    )  # fmt: skip
    hog.event("opened", calls=CALLS)
    # every call of org3 beyond its share is refused at once, with a clear reason
    hog.wait_event(lambda e: e.get("refused", 0) >= CALLS - PER_ORG, what="the refusals")
    busy = f"busy: org3 already has {PER_ORG} data-plane calls open"
    hog.wait_event(lambda e: str(e.get("details")).startswith(busy), what="a busy refusal")

    # the stalled uploads org3 holds are cut by the idle deadline (and opened again)
    hog.event("ended", code="CANCELLED")

    # another organization is answered while org3 keeps hammering
    org2 = load_identity(identity_dir(dep.pki, "org2", "client1"))
    with DataPlaneClient(address, org2, load_consortium(dep.pki), timeout=15) as client:
        assert client.ping() == "org2"

    clients = {org: dep.client(org, address) for org in ("org1", "org2")}
    agg.expect_exit(0)
    for proc in clients.values():
        proc.expect_exit(0)
    rounds = closes(dep.ledger)
    assert sorted(rounds) == [1, 2]
    for rnd in (1, 2):
        assert sorted(by_org(rounds[rnd]["aggregated"], "update_sha256")) == ["org1", "org2"]
    assert hog.popen.poll() is None  # the attacker was at it the whole time
