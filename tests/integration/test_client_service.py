"""``fedchain-client`` as a long-lived service, as an operator sees it on its terminal or in
its log: one line per change of state (waiting for the ledger, waiting for the aggregator,
attached, round N, idle between runs, lost, finished), in order, and a bar that ends full."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.integration.runtime_support import STOPPED, TINY_CLIENT, Deployment, Proc, free_port

pytestmark = pytest.mark.slow


def client(dep: Deployment, address: str, *extra: str) -> Proc:
    """org2's client with human output (lines on stderr), the tiny app."""
    args = ["--pki", str(dep.pki), "--org", "org2", "--server", address, "--ledger",
            str(dep.ledger), "--app", TINY_CLIENT, *extra]  # fmt: skip
    return dep.spawn("org2", "fedchain.cli.client", args, None)


def in_order(proc: Proc, *texts: str) -> list[int]:
    """Wait for a stderr line with each text; their line numbers (which must increase)."""
    for text in texts:
        proc.wait_err(text)
    lines = proc.err
    found = [next(i for i, line in enumerate(lines) if text in line) for text in texts]
    assert found == sorted(found), "\n".join(lines)
    return found


def test_a_client_started_first_says_what_it_waits_for_then_what_it_does(
    deployment: Deployment,
) -> None:
    """It used to say nothing for 60 s without a ledger, then one line and silent retries
    without an aggregator, and its bar stayed at 0/1 after the run."""
    dep, address = deployment, f"127.0.0.1:{free_port()}"
    org = client(dep, address, "--exit-when-done")
    org.wait_err(f"org2: waiting for the ledger file {dep.ledger} (the aggregator creates it)")
    assert org.popen.poll() is None  # said at once, still waiting
    agg = dep.server(rounds=2, address=address, min_nodes=2)  # FedAvg samples two at least
    other = dep.client("org3", address)
    in_order(org, "waiting for the ledger file", f"org2: waiting for the aggregator at {address}",
             f"org2: attached to the aggregator at {address}")  # fmt: skip
    in_order(org, "org2: waiting for the aggregator", "org2: round 1: training",
             "org2: round 1: evaluating", "org2: round 2: training",
             "finished (2 rounds); exiting")  # fmt: skip
    org.expect_exit(0)
    agg.expect_exit(0)
    other.expect_exit(0)
    assert "2/2" in org.err[-1]
    assert not any("0/1" in line for line in org.err)


def test_a_service_client_outlives_runs_and_aggregator_restarts(deployment: Deployment) -> None:
    dep, address = deployment, f"127.0.0.1:{free_port()}"
    first = dep.server(rounds=1, address=address, min_nodes=2)
    org = client(dep, address)
    dep.client("org3", address, name="org3-first")
    in_order(org, "org2: round 1: training", "finished (1 round); idle until the next run")
    first.expect_exit(0)
    org.wait_err(f"org2: lost the aggregator at {address} (")
    lost = next(line for line in org.err if "lost the aggregator" in line)
    assert lost.endswith("retrying in 0.5 s"), lost
    second = dep.server(rounds=1, address=address, min_nodes=2)
    dep.client("org3", address, name="org3-second")
    second.expect_exit(0)
    org.wait_err("idle until the next run", count=2)
    attached = [i for i, line in enumerate(org.err) if "attached to the aggregator" in line]
    trained = [i for i, line in enumerate(org.err) if "org2: round 1: training" in line]
    assert len(attached) == len(trained) == 2  # once per run
    assert org.popen.poll() is None  # a service: still there, waiting for the next run
    org.popen.send_signal(signal.SIGTERM)
    org.expect_exit(STOPPED[signal.SIGTERM][0])


def _text_file(folder: Path) -> Path:
    (folder / "notes.txt").write_text("not a ledger")
    return folder / "notes.txt"


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (_text_file, "{tmp}/notes.txt: file is not a database (not a readable fedchain ledger)"),
        (lambda d: d / "no-such-folder" / "ledger.sqlite",
         "no folder {tmp}/no-such-folder for the ledger file ledger.sqlite"),
    ],
    ids=["not a ledger", "no folder"],
)  # fmt: skip
def test_a_ledger_that_cannot_be_is_one_line_at_once(
    deployment: Deployment, make: Callable[[Path], Path], said: str
) -> None:
    """Both used to be retried in silence for 60 s before the error."""
    ledger = make(deployment.workdir)
    org = deployment.spawn("org2", "fedchain.cli.client", [
        "--pki", str(deployment.pki), "--org", "org2", "--ledger", str(ledger),
        "--app", TINY_CLIENT,
    ], None)  # fmt: skip
    org.expect_exit(1, timeout=30)  # far below the 60 s it took
    lines = [line for line in org.err if line.strip()]
    assert lines == ["error: " + said.format(tmp=deployment.workdir)]
