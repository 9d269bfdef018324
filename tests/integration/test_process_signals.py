"""Stop signals to ``fedchain-server`` and ``fedchain-client``: each ends the process after its
clean-up (data plane stopped, ledger closed), with 128 + the signal and one line, never a
traceback nor a process left running."""

from __future__ import annotations

import signal

import pytest
from tests.integration.runtime_support import STOPPED, Deployment

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("stop_signals_at_default")]


@pytest.mark.parametrize("signum", list(STOPPED), ids=lambda s: signal.Signals(s).name)
def test_a_stop_signal_ends_the_aggregator_and_an_organization(
    deployment: Deployment, signum: int
) -> None:
    agg = deployment.server(rounds=3, min_nodes=3)  # waits for three organizations: idle
    address = str(agg.event("listening")["address"])
    org = deployment.client("org2", address)
    org.event("state", state="attached")
    for proc in (agg, org):
        proc.popen.send_signal(signum)
    code, line = STOPPED[signum]
    for proc in (agg, org):
        proc.expect_exit(code)
        lines = [text for text in proc.err if text.strip()]
        assert lines[-1] == line, lines
        assert not any("Traceback" in text for text in lines), lines
