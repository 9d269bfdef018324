"""Flower apps in the shapes of Flower's quickstarts (``flower_apps/``) run unchanged on
fedchain's real processes (``fedchain-server`` and three ``fedchain-client``, mTLS on loopback,
the embedded ledger) and in Flower's own simulation (``flower_sim``) with the same run config,
seeds and partitions; each ServerApp writes its final model(s), and the two must agree within
floating-point tolerance. The NumPy app runs every Message-API strategy of the installed
Flower in turn; a new strategy in Flower fails :func:`test_every_flower_strategy_is_covered`
until the suite covers it.
"""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from flwr.serverapp import strategy as flower_strategies

from fedchain.runtime.rounds import RUN_END
from tests.integration.runtime_support import ROOT, WAIT, Deployment, child_env, closes

pytestmark = pytest.mark.slow

APPS = Path(__file__).parent / "flower_apps"
ORGS = ("org1", "org2", "org3")
#: app directory -> the results its ServerApp writes (one per strategy it runs)
RESULTS = {
    "numpy_app": None,  # every strategy of conf_numpy.server_app.STRATEGIES
    "pytorch_app": {"FedAvg"},
    "sklearn_app": {"FedAvg"},
    "loop_app": {"own-loop"},
    "mods_app": {"DifferentialPrivacyClientSideFixedClipping"},
}
#: Flower's strategies the suite does not run, and why.
NOT_RUN = {
    "Strategy": "the abstract base class",
    "FedXgbBagging": "aggregates XGBoost models (bytes), not arrays; needs xgboost",
    "FedXgbCyclic": "aggregates XGBoost models (bytes), not arrays; needs xgboost",
    "DifferentialPrivacyClientSideAdaptiveClipping": "needs adaptiveclipping_mod on the "
    "clients, which refuses the fixed-clipping wrapper's messages: a second mods app",
}


#: Results that depend on the order replies arrive in, which neither runtime fixes.
ORDER_DEPENDENT = {
    "Krum": "with 3 nodes each score is the distance to the nearest other update, so the two "
    "closest updates tie and Krum takes whichever reply came first",
}


def _numpy_strategies() -> set[str]:
    sys.path.insert(0, str(APPS / "numpy_app"))
    try:
        module = importlib.import_module("conf_numpy.server_app")
    finally:
        sys.path.remove(str(APPS / "numpy_app"))
    return set(module.STRATEGIES)


def test_every_flower_strategy_is_covered() -> None:
    flower = {
        name
        for name, value in vars(flower_strategies).items()
        if inspect.isclass(value) and issubclass(value, flower_strategies.Strategy)
    }
    covered = _numpy_strategies() | {"DifferentialPrivacyClientSideFixedClipping"}
    assert flower - set(NOT_RUN) == covered


def _simulate(app: Path, out: Path) -> subprocess.Popen[str]:
    env = child_env(CONFORMANCE_OUT=str(out), RAY_DEDUP_LOGS="0")
    return subprocess.Popen(
        [sys.executable, "-m", "tests.conformance.flower_sim", str(app), "3"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _on_fedchain(dep: Deployment, app: Path, out: Path) -> None:
    env = {"CONFORMANCE_OUT": str(out)}
    args = ["--pki", str(dep.pki), "--ledger", str(dep.ledger), "--models", str(dep.models),
            "--address", "127.0.0.1:0", "--min-nodes", "3", "--deadline", "120",
            "--app", str(app), "--json"]  # fmt: skip
    agg = dep.spawn("aggregator", "fedchain.cli.server", args, env)
    address = str(agg.event("listening")["address"])
    clients = [dep.client(org, address, app=str(app), env=env) for org in ORGS]
    agg.expect_exit(0, timeout=WAIT * 3)
    for proc in clients:
        proc.expect_exit(0)


def _results(folder: Path) -> dict[str, list[np.ndarray]]:
    found = {}
    for path in sorted(folder.glob("*.npz")):
        with np.load(path) as data:
            found[path.stem] = [data[f"arr_{i}"] for i in range(len(data.files))]
    return found


@pytest.mark.parametrize("name", sorted(RESULTS))
def test_app_gives_the_same_model_on_fedchain_and_in_flower_s_simulation(
    name: str, consortium_dir: Path, tmp_path: Path
) -> None:
    app = APPS / name
    sim_out, fed_out = tmp_path / "simulation", tmp_path / "fedchain"
    sim_out.mkdir()
    fed_out.mkdir()
    simulation = _simulate(app, sim_out)
    dep = Deployment(pki=consortium_dir, workdir=tmp_path)
    try:
        _on_fedchain(dep, app, fed_out)
        _, err = simulation.communicate(timeout=WAIT * 4)
    finally:
        dep.stop_all()
        if simulation.poll() is None:
            simulation.kill()
    assert simulation.returncode == 0, err[-3000:]
    expected = RESULTS[name] or _numpy_strategies()
    fed, sim = _results(fed_out), _results(sim_out)
    assert set(sim) == expected
    assert set(fed) == expected
    for label in sorted(expected):
        assert [a.shape for a in fed[label]] == [a.shape for a in sim[label]], label
        if label in ORDER_DEPENDENT:
            assert all(np.isfinite(a).all() for a in fed[label]), label
            continue
        for got, want in zip(fed[label], sim[label], strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6, err_msg=label)
        assert _close_metrics(fed_out / f"{label}.json", sim_out / f"{label}.json"), label
    rounds = closes(dep.ledger)
    assert max(rounds.values(), key=lambda r: r["round"])["metrics"][RUN_END] == 1
    if name != "loop_app":  # a strategy ran: every round has its global model on the ledger
        assert all(r["model_sha256"] for r in rounds.values())
    if name == "numpy_app":  # FedAvg ran first, with an evaluate_fn: its metrics are recorded
        central = json.loads((fed_out / "FedAvg.json").read_text())["central"]
        for rnd in (1, 2):
            recorded = rounds[rnd]["metrics"]["serverapp.accuracy"]
            assert recorded == pytest.approx(central[str(rnd)]["accuracy"])


def _close_metrics(ours: Path, theirs: Path) -> bool:
    """The recorded metrics agree number by number (nested per round)."""

    def numbers(value: object) -> list[float]:
        if isinstance(value, dict):
            return [n for k in sorted(value) for n in numbers(value[k])]
        return [float(value)] if isinstance(value, int | float) else []

    a, b = (numbers(json.loads(p.read_text())) for p in (ours, theirs))
    return len(a) == len(b) and np.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_recorded_metrics_compare_number_by_number(tmp_path: Path) -> None:
    """The comparison above sees the numbers inside per-round metric records."""
    ours, theirs = tmp_path / "a.json", tmp_path / "b.json"
    ours.write_text(json.dumps({"central": {"1": {"accuracy": 0.5}}}))
    theirs.write_text(json.dumps({"central": {"1": {"accuracy": 0.75}}}))
    assert not _close_metrics(ours, theirs)
    assert _close_metrics(ours, ours)
