"""``fedchain explorer --config`` on a REAL Fabric channel, read as one organization.

A run is written to a fresh chaincode namespace on the network of
``tests/fabric_support/real.py`` (skipped without one), each record by its own organization
through its own peer; the explorer, configured by org2's ``fedchain.toml``, serves it, and a
browser sees the rounds, the refusal and the write-rule verdict; a round written while the
page is open appears on it.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.fabric_support.real import OpenReal, RealNetwork
from tests.integration.explorer_support import REFUSAL, RUN, Explorer, append_round, publish_run

from fedchain.ledger import Record

pytest_plugins = ["tests.fabric_support.real"]
pytestmark = [pytest.mark.slow, pytest.mark.fabric]
PAGE_WAIT = 10_000  # ms; below the SSE keep-alive (15 s): only the push can meet it


def test_a_fabric_channel_in_the_browser(
    real_network: RealNetwork, real_namespace: str, open_real: OpenReal,
    real_genesis: Record, browser: Any,
) -> None:  # fmt: skip
    handles = {org: open_real(org) for org in ("org1", "org2", "org3")}
    handles["org1"].metadata_publish(real_genesis)
    publish_run(handles, rounds=1, planned=2)
    toml = real_network.tomls / "org2.toml"
    env = {"FEDCHAIN_LEDGER__FABRIC__CHAINCODE": real_namespace}
    context = browser.new_context()
    page = context.new_page()
    try:
        with Explorer("--config", toml, env=env) as explorer:
            page.goto(f"{explorer.url}/run/{RUN}")
            assert "fabric ledger" in page.locator("header .where").inner_text()
            assert page.locator("#rounds-done").inner_text() == "1 of 2"
            assert page.locator('svg.chart[data-metric="accuracy"] circle.pt').count() == 1
            assert page.locator(".refused").inner_text() == f"org3: {REFUSAL}"
            append_round(handles, 2)
            page.locator('#rounds tr[data-round="2"]').wait_for(timeout=PAGE_WAIT)
            page.wait_for_function("() => document.querySelectorAll("
                                   "'svg.chart[data-metric=accuracy] circle.pt').length === 2",
                                   timeout=PAGE_WAIT)  # fmt: skip
            assert page.locator("#run-status").inner_text() == "finished"
            page.goto(explorer.url + "/integrity")
            assert page.locator("#verdict h2").inner_text() == "Intact"
            assert "write rules replayed" in page.locator("#verdict").inner_text()
    finally:
        context.close()
