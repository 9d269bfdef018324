"""A Flower app directory run unchanged by the real ``fedchain-server`` and ``fedchain-client``
processes (issue 13): typed settings reach both halves as ``flwr run`` gives them, an unchanged
``FedAvg`` gets models and metrics on the ledger, a refused update reaches the strategy as a
failure, ``--deadline`` bounds Flower's default timeout, numpy metrics are recorded, and the run
ends when the ServerApp returns (or raises), whatever its round count or numbering.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flwr.common.config import get_fused_config_from_dir
from tests.integration.runtime_support import (
    ROOT,
    WAIT,
    Deployment,
    Proc,
    by_org,
    child_env,
    closes,
    records,
)

from fedchain.runtime.rounds import RUN_END, finite_metrics

pytestmark = pytest.mark.slow

APP = ROOT / "tests" / "apps" / "flower_items"
ORGS = ("org1", "org2", "org3")


def _start(
    dep: Deployment, settings: str, *flags: str, env: dict[str, str]
) -> tuple[Proc, dict[str, Proc]]:
    """The aggregator with ``fedchain.toml`` holding ``settings``, then three organizations."""
    toml = dep.workdir / "fedchain.toml"
    toml.write_text(settings)
    args = ["--config", str(toml), "--pki", str(dep.pki), "--ledger", str(dep.ledger),
            "--models", str(dep.models), "--address", "127.0.0.1:0", "--min-nodes", "3",
            "--app", str(APP), "--json", *flags]  # fmt: skip
    agg = dep.spawn("aggregator", "fedchain.cli.server", args, env)
    address = str(agg.event("listening")["address"])
    clients = {org: dep.client(org, address, app=str(APP), env=env) for org in ORGS}
    return agg, clients


def _run_to_end(dep: Deployment, tmp_path: Path, settings: str, *flags: str) -> tuple[Proc, Path]:
    """Run the app until every process exited by itself (the organizations with
    ``--exit-when-done``: the run ended); the aggregator and the folder of what the app saw."""
    out = tmp_path / "seen"
    out.mkdir()
    agg, clients = _start(dep, settings, *flags, env={"ITEMSAPP_OUT": str(out)})
    agg.expect_exit(0)
    for proc in clients.values():
        proc.expect_exit(0)
    return agg, out


def _seen(out: Path, name: str) -> dict[str, Any]:
    """What the app recorded as its ``Context.run_config``: ``{key: value}``, types checked by
    comparing ``{key: [type name, value]}``."""
    return dict(json.loads((out / f"{name}.json").read_text()))


def _typed(config: dict[str, Any]) -> dict[str, Any]:
    return {k: [type(v).__name__, v] for k, v in config.items()}


def test_typed_settings_unchanged_fedavg_refusals_deadline_and_numpy_metrics(
    deployment: Deployment, tmp_path: Path
) -> None:
    settings = '[run_config]\n"bad-org" = "org3"\n"local-epochs" = 1\npenalty = "l1"\n'
    agg, out = _run_to_end(deployment, tmp_path, settings, "--rounds", "2", "--deadline", "45")

    # 1. exactly what `flwr run --run-config ...` gives both halves (types included)
    flower = get_fused_config_from_dir(
        APP, {"bad-org": "org3", "local-epochs": 1, "penalty": "l1", "num-server-rounds": 2}
    )
    assert flower["fit-intercept"] is True
    assert flower["model.width"] == 8
    for name in ("server", *(f"client-{org}" for org in ORGS)):
        assert _seen(out, name) == _typed(flower), name
    (run,) = records(deployment.ledger, kind="run")
    assert run["config"] == finite_metrics(flower)  # the numbers, on the run record

    # 4. an unchanged FedAvg: every close has the global model, saved and verified by audit
    rounds = closes(deployment.ledger)
    assert sorted(rounds) == [1, 2]
    for close in rounds.values():
        assert close["model_sha256"] is not None
        assert (deployment.models / f"{close['model_sha256']}.bin").is_file()
        assert {"train_loss", "eval_loss"} <= set(close["metrics"])  # 2. numpy float64s
    assert rounds[2]["metrics"][RUN_END] == 1
    audit = subprocess.run(
        [sys.executable, "-m", "fedchain.cli.main", "audit", "--ledger", str(deployment.ledger),
         "--models", str(deployment.models), "--json"],
        capture_output=True, text=True, env=child_env(), timeout=WAIT,
    )  # fmt: skip
    assert audit.returncode == 0, audit.stderr
    report = json.loads(audit.stdout)
    assert report["ok"]
    assert not report["models"]["missing"]
    assert len(report["models"]["verified"]) == 3  # the initial model and two rounds'

    # 6. the refused update reached FedAvg as a failure
    assert set(by_org(rounds[1]["rejected"], "reason")) == {"org3"}
    assert "NaN" in by_org(rounds[1]["rejected"], "reason")["org3"]
    agg.wait_err("aggregate_train: Received 2 results and 1 failures")

    # 5. the smaller of Flower's timeout (3600 s) and --deadline 45
    with_ts = _task_deadlines(deployment.ledger)
    assert with_ts
    assert all(44_000 <= d - ts <= 46_000 for d, ts in with_ts), with_ts


def _task_deadlines(ledger: Path) -> list[tuple[int, int]]:
    """``(deadline, write time)`` of every task record, both in Unix milliseconds."""
    from fedchain.ledger import Query
    from fedchain.ledger.embedded import EmbeddedLedger

    with EmbeddedLedger.open(ledger) as led:
        return [(int(e.record["deadline"]), e.ts) for e in led.metadata_get(Query(kind="task"))]


def test_own_loop_numbering_rounds_from_zero_ends_when_the_server_app_returns(
    deployment: Deployment, tmp_path: Path
) -> None:
    """No ``--rounds``: the app's own count (3), rounds 0, 2, 4, QUERY and TRAIN messages."""
    _, out = _run_to_end(deployment, tmp_path, '[run_config]\nmode = "own-loop"\n')
    rounds = closes(deployment.ledger)
    assert sorted(rounds) == [0, 2, 4]
    assert [RUN_END in rounds[r]["metrics"] for r in (0, 2)] == [False, False]
    assert rounds[4]["metrics"][RUN_END] == 1
    types = sorted({(r["round"], r["type"]) for r in records(deployment.ledger, kind="task")})
    assert types == [(r, t) for r in (0, 2, 4) for t in ("query", "train")]
    assert _seen(out, "client-org1")["num-server-rounds"] == ["int", 3]


def test_a_server_app_that_raises_ends_the_run_and_the_organizations_exit(
    deployment: Deployment, tmp_path: Path
) -> None:
    agg, clients = _start(deployment, '[run_config]\nmode = "raise"\n', env={})
    assert agg.finish() == 1
    assert "the app failed after its first round" in agg.stderr_text()
    for proc in clients.values():
        proc.expect_exit(0)
    rounds = closes(deployment.ledger)
    assert sorted(rounds) == [1]
    assert rounds[1]["metrics"][RUN_END] == 0  # ended by a failure


def test_rounds_for_an_app_without_num_server_rounds_is_one_error_line(
    deployment: Deployment, tmp_path: Path
) -> None:
    """--rounds sets the app's num-server-rounds; an app without it decides its own rounds."""
    app = tmp_path / "app"
    app.mkdir()
    text = (APP / "pyproject.toml").read_text().replace("num-server-rounds = 3\n", "")
    (app / "pyproject.toml").write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "fedchain.cli.server", "--app", str(app), "--rounds", "2",
         "--pki", str(deployment.pki), "--ledger", str(deployment.ledger)],
        capture_output=True, text=True, env=child_env(), timeout=WAIT, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    assert "num-server-rounds" in lines[0]


def test_demo_runs_a_flower_app_directory(tmp_path: Path) -> None:
    """``fedchain demo --app DIR``: the app's own rounds (``--rounds`` sets them), audited."""
    done = subprocess.run(
        [sys.executable, "-m", "fedchain.cli.main", "demo", "--app", str(APP), "--rounds", "2",
         "--workdir", str(tmp_path / "demo"), "--json"],
        capture_output=True, text=True, env=child_env(), timeout=WAIT * 2, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["audit_ok"]
    assert [r["round"] for r in result["rounds"]] == [1, 2]
    assert all(r["model_sha256"] for r in result["rounds"])  # FedAvg unchanged, models recorded
    assert result["accuracy"] is None  # the built-in app's measure does not apply
