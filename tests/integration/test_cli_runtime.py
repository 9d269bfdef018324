"""The runtime's commands end to end, as a user runs them: the installed console scripts
``fedchain``, ``fedchain-server`` and ``fedchain-client`` in real processes over mTLS on
127.0.0.1, with the embedded ledger file, then ``fedchain audit``; ``fedchain demo``; and the
one-line ``error: ...`` (exit 1) a user gets for input they can fix.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.runtime_support import ROOT, WAIT, Deployment, Proc, child_env, closes

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
FLOWER_APP = ROOT / "tests" / "apps" / "flower_app"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run an installed console script to completion (never raises on a non-zero exit)."""
    argv = [str(BIN / str(args[0])), *map(str, args[1:])]
    return subprocess.run(
        argv, capture_output=True, text=True, env=child_env(), cwd=ROOT, timeout=WAIT * 2
    )


def start(dep: Deployment, name: str, *args: str | Path) -> Proc:
    """Start an installed console script (JSON events on stdout)."""
    proc = Proc(name, [str(BIN / str(args[0])), *map(str, args[1:])], dep.workdir, child_env())
    dep.procs.append(proc)
    return proc


def test_pki_init_server_three_clients_then_audit(tmp_path: Path) -> None:
    pki, ledger, models = tmp_path / "pki", tmp_path / "ledger.sqlite", tmp_path / "models"
    made = run("fedchain", "pki", "init", "--consortium", "e2e", "--orgs", "org1,org2,org3",
               "--out", pki)  # fmt: skip
    assert made.returncode == 0, made.stderr
    dep = Deployment(pki=pki, workdir=tmp_path)
    try:
        agg = start(
            dep, "aggregator", "fedchain-server", "--pki", pki, "--ledger", ledger,
            "--models", models, "--address", "127.0.0.1:0", "--rounds", "2", "--min-nodes", "3",
            "--deadline", "30", "--app", FLOWER_APP, "--json",
        )  # fmt: skip
        address = str(agg.event("listening")["address"])
        orgs = [start(dep, org, "fedchain-client", "--pki", pki, "--org", org, "--server",
                      address, "--ledger", ledger, "--app", FLOWER_APP, "--exit-when-done",
                      "--json") for org in ("org1", "org2", "org3")]  # fmt: skip
        agg.expect_exit(0)
        for proc in orgs:
            proc.expect_exit(0)
    finally:
        dep.stop_all()
    rounds = closes(ledger)
    assert sorted(rounds) == [1, 2]
    assert all(len(r["aggregated"]) == 3 for r in rounds.values())

    audited = run("fedchain", "audit", "--ledger", ledger, "--models", models)
    assert audited.returncode == 0, audited.stderr
    out = audited.stdout
    assert "rounds recorded in" in out
    assert "ledger intact" in out
    assert "3 verified, 0 missing, 0 altered" in out  # the initial model and two rounds
    rows = [line.split()[:4] for line in out.splitlines() if line.split()[1:2] == ["closed"]]
    assert rows == [[str(n), "closed", "org1=10,", "org2=11,"] for n in (1, 2)], out
    for rnd in (1, 2):
        assert rounds[rnd]["model_sha256"][:12] in out
    for narrow in ({"COLUMNS": "80"}, {}):  # an 80-column terminal; a pipe (rich assumes 80)
        env = {k: v for k, v in child_env().items() if k != "COLUMNS"} | narrow
        shown = subprocess.run([str(BIN / "fedchain"), "audit", "--ledger", str(ledger)],
                               capture_output=True, text=True, env=env, timeout=WAIT, check=True)
        assert_readable(shown.stdout, rounds, 80)


def assert_readable(out: str, rounds: dict[int, Any], width: int) -> None:
    """Every line fits; no value is cut: the run id, each organization's count, each model
    hash prefix and each metric appear whole (an audit at 80 columns showed only ``run-…``)."""
    assert all(len(line) <= width for line in out.splitlines()), out
    assert "…" not in out
    words = out.replace(",", " ").split()
    run = str(rounds[1].run)
    assert f"run {run}: 2 rounds, 2 closed" in out
    for record in rounds.values():
        assert record["model_sha256"][:12] in words
        for name, value in record["metrics"].items():
            assert f"{name}={value:.4g}" in words, (name, out)
    assert {"org1=10", "org2=11", "org3=12"} <= set(words), out


def test_demo_json(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    result = run("fedchain", "demo", "--rounds", "2", "--workdir", workdir, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert last["event"] == "result"
    assert last["audit_ok"] is True
    assert last["accuracy"] > last["baseline"] - 0.3
    assert [r["round"] for r in last["rounds"]] == [1, 2]
    assert Path(last["plot"]).is_file()
    assert Path(last["ledger"]).is_file()
    for org in ("org1", "org2", "org3"):  # each organization's log says what it did
        events = [json.loads(line) for line in (workdir / "logs" / f"{org}.log").open()
                  if line.startswith("{")]  # fmt: skip
        states = [e["message"] for e in events if e["event"] == "state"]
        assert states[1].startswith("attached to the aggregator at 127.0.0.1:"), states
        assert states[-1] == f"run {last['run']} finished (2 rounds); exiting"
        assert {"round 1: training", "round 2: training"} <= set(states)
        assert [e["round"] for e in events if e["event"] == "closed"] == [1, 2]


def test_demo_secure_says_masked_where_the_counts_are_masked(tmp_path: Path) -> None:
    """``demo --secure`` showed ``org1:0 org2:0 org3:0``: with secure aggregation the counts
    travel masked, and the ledger's zeros mean nothing. The audit says so too."""
    workdir = tmp_path / "demo"
    env = {k: v for k, v in child_env().items() if k != "COLUMNS"} | {"COLUMNS": "80"}
    result = subprocess.run(
        [str(BIN / "fedchain"), "demo", "--secure", "--rounds", "1", "--workdir", str(workdir)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=WAIT * 2,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    row = next(line for line in result.stdout.splitlines() if line.startswith("│ 1 "))
    assert "masked" in row, result.stdout
    assert "org1:0" not in result.stdout
    audited = run("fedchain", "audit", "--ledger", workdir / "ledger.sqlite")
    assert audited.returncode == 0, audited.stderr
    assert [line.split()[:3] for line in audited.stdout.splitlines()
            if line.split()[1:2] == ["closed"]] == [["1", "closed", "masked"]]  # fmt: skip


# -- input a user can fix: one line, exit 1 -----------------------------------------------------

BAD = {
    "missing pki": (["fedchain-server", "--pki", "{tmp}/nowhere"], "no consortium at"),
    "unknown org": (["fedchain-client", "--pki", "{pki}", "--org", "org7"],
                    "org7 is not an organization of consortium 'testnet'"),
    "ledger is a directory": (["fedchain-client", "--pki", "{pki}", "--org", "org2",
                               "--ledger", "{tmp}"], "is a directory, not a ledger file"),
    "server app": (["fedchain-server", "--pki", "{pki}", "--ledger", "{tmp}/l.sqlite",
                    "--app", "no_such_module:app"], "cannot import 'no_such_module'"),
    "client app": (["fedchain-client", "--pki", "{pki}", "--org", "org2", "--ledger",
                    "{tmp}/l.sqlite", "--app", "tests.apps:no_such_app"],
                   "tests.apps has no attribute 'no_such_app'"),
}  # fmt: skip


@pytest.fixture(scope="module")
def bad_runs(
    consortium_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Proc]]:
    """Every bad command started at once (they run side by side), by case name."""
    tmp = tmp_path_factory.mktemp("bad-cli")
    dep = Deployment(pki=consortium_dir, workdir=tmp)
    try:
        yield {
            case: start(dep, case.replace(" ", "-"),
                        *[a.format(tmp=tmp, pki=consortium_dir) for a in argv])
            for case, (argv, _) in BAD.items()
        }  # fmt: skip
    finally:
        dep.stop_all()


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_error_line(bad_runs: dict[str, Proc], case: str) -> None:
    proc = bad_runs[case]
    assert proc.finish() == 1
    lines = [line for line in proc.stderr_text().splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    assert BAD[case][1] in lines[0]


def test_a_ledger_kept_across_runs_serves_the_next_run(deployment: Deployment) -> None:
    """Organizations started without ``--run`` on a ledger that holds a finished run take
    part in the new one (task ids repeat across runs) and exit when it is done, not at once."""
    dep, runs = deployment, []
    for _ in range(2):  # the same commands twice, on the same ledger file
        agg, clients, _ = dep.start(dict.fromkeys(("org1", "org2", "org3")), rounds=2)
        runs.append(agg.event("listening")["run"])
        agg.expect_exit(0)
        for proc in clients.values():
            proc.expect_exit(0)
            assert proc.event("uploaded", round=2)  # answered the final round of this run
    assert runs[0] != runs[1]  # the first run was finished: a new one started
    for run_id in runs:
        rounds = closes(dep.ledger, run_id)
        assert sorted(rounds) == [1, 2]
        assert all(len(r["aggregated"]) == 3 for r in rounds.values())


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_flower_s_log_is_printed_once_without_colours_in_a_pipe(
    deployment: Deployment, verbose: bool
) -> None:
    """Flower's ``flwr`` logger has its own console handler and propagated to the root
    logger's too, so every Flower line reached the aggregator's stderr twice (once with ANSI
    colours). Now each comes once, without colours when stderr is not a terminal, with and
    without ``-v``."""
    extra = ("-v",) if verbose else ()
    agg, clients, _ = deployment.start(dict.fromkeys(("org1", "org2", "org3")), rounds=1,
                                       extra=extra)  # fmt: skip
    agg.expect_exit(0)
    for proc in clients.values():
        proc.expect_exit(0)
    lines = agg.stderr_text().splitlines()
    starting = [line for line in lines if "Starting LedgerStrategy strategy" in line]
    assert len(starting) == 1, lines[:20]
    assert starting[0].startswith("INFO ")
    assert not [line for line in lines if line.startswith("INFO:flwr:")]
    assert "\x1b[" not in agg.stderr_text()
