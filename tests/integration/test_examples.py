"""The ``examples/`` apps, unchanged, through ``fedchain demo --app`` (the real aggregator and
organization processes over mTLS, the embedded ledger, the audit) and through Flower's own
simulation: each trains above chance, its ledger audits clean, and what the app saved is the
model the ledger names."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.integration.runtime_support import (
    ROOT,
    WAIT,
    Deployment,
    by_org,
    child_env,
    closes,
    records,
)

from fedchain.runtime.arrays import load_model

EXAMPLES = ROOT / "examples"
pytestmark = pytest.mark.slow


def demo(app: str, cwd: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``fedchain demo --app examples/APP ... --json`` run from ``cwd``; its result event."""
    proc = subprocess.run(
        [sys.executable, "-m", "fedchain.cli.main", "demo", "--app", str(EXAMPLES / app),
         "--workdir", str(cwd / "demo"), "--json", *args],
        cwd=cwd, env=child_env(**(env or {})), capture_output=True, text=True, timeout=4 * WAIT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["audit_ok"], result["problems"]
    return dict(result)


def final_model(result: dict[str, Any], cwd: Path) -> list[np.ndarray]:
    """The last global model the ledger names, read from the demo's models folder."""
    digest = result["rounds"][-1]["model_sha256"]
    return list(load_model(cwd / "demo" / "models", digest).to_numpy_ndarrays())


@pytest.fixture
def app_on_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Import an example's modules in this process (to evaluate a model); forget them after."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.split(".")[0] in ("hospitals", "tabular", "selection"):
            del sys.modules[name]


def test_pytorch_hospitals_trains_a_cnn_and_the_ledger_holds_the_app_s_final_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, app_on_path: None
) -> None:
    torch = pytest.importorskip("torch")
    result = demo("pytorch-hospitals", tmp_path, "--rounds", "2")
    assert [row["round"] for row in result["rounds"]] == [1, 2]
    assert all(row["participants"] == ["org1", "org2", "org3"] for row in result["rounds"])
    monkeypatch.syspath_prepend(str(EXAMPLES / "pytorch-hospitals"))
    from hospitals.task import new_model, pooled, test

    digest = result["rounds"][-1]["model_sha256"]
    state = load_model(tmp_path / "demo" / "models", digest).to_torch_state_dict()
    saved = torch.load(tmp_path / "final_model.pt")
    assert state.keys() == saved.keys()
    assert all(torch.equal(state[key], saved[key]) for key in state)
    model = new_model(0)
    model.load_state_dict(state)
    _, accuracy = test(model, pooled(0)[1])
    assert accuracy > 0.5  # ten classes: chance is 0.1
    assert result["rounds"][-1]["serverapp.central_acc"] == pytest.approx(accuracy)


def test_tabular_secagg_dp_runs_secure_aggregation_around_the_app_s_dp_strategy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, app_on_path: None
) -> None:
    result = demo("tabular-secagg-dp", tmp_path, "--rounds", "2", "--secure")
    ledger = tmp_path / "demo" / "ledger.sqlite"
    orgs = ["org1", "org2", "org3"]
    for close in (r for r in records(ledger, kind="close") if r["round"] in (1, 2)):
        # masked updates: in the sum, and nothing about the plaintext (not even the count)
        assert sorted(a["org"] for a in close["aggregated"]) == orgs
        assert close["dropouts"] == []
        assert close["model_sha256"] is not None
    keys = records(ledger, kind="keys")
    assert sorted({(k["round"], k.org) for k in keys}) == [(r, o) for r in (1, 2) for o in orgs]
    train = {t["task"] for t in records(ledger, kind="task") if t["type"] == "train"}
    assert all(u["num_examples"] == 0 for u in records(ledger, kind="update") if u["task"] in train)
    monkeypatch.syspath_prepend(str(EXAMPLES / "tabular-secagg-dp"))
    from tabular.task import pooled, test

    params = final_model(result, tmp_path)
    with np.load(tmp_path / "final_model.npz") as saved:
        assert all(np.array_equal(saved[f"arr_{i}"], p) for i, p in enumerate(params))
    _, accuracy = test(params, pooled(0)[1])
    assert accuracy > 0.8  # about 0.63 of the whole set is benign
    assert result["rounds"][-1]["serverapp.central_acc"] == pytest.approx(accuracy)


def test_selection_policy_moves_only_the_selected_updates_as_the_ledger_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, app_on_path: None
) -> None:
    env = {"FEDCHAIN_SERVER__SELECTION": "top-k", "FEDCHAIN_SERVER__K": "3"}
    result = demo("selection-policy", tmp_path, "--rounds", "2", "--orgs", "4", env=env)
    ledger = tmp_path / "demo" / "ledger.sqlite"
    selections = records(ledger, kind="selection")
    assert len(selections) == 4  # train and evaluate tasks of two rounds
    assert all(s["selected"] == ["org1", "org2", "org3"] for s in selections)  # the 3 largest
    for close in records(ledger, kind="close"):
        assert sorted(a["org"] for a in close["aggregated"]) in ([], ["org1", "org2", "org3"])
    shown = subprocess.run(
        [sys.executable, "-m", "fedchain.cli.main", "ledger", "show", "--ledger", str(ledger),
         "--json"], capture_output=True, text=True, check=True, env=child_env(),
    ).stdout  # fmt: skip
    bytes_moved = subprocess.run(
        [sys.executable, str(EXAMPLES / "selection-policy" / "bytes_moved.py"), "--json"],
        input=shown, capture_output=True, text=True, check=True,
    )  # fmt: skip
    moved = json.loads(bytes_moved.stdout)
    org4 = sum(u["update_size"] for u in records(ledger, kind="update") if u.org == "org4")
    total = moved["total"]
    assert total["announced_updates"] == 16
    assert total["received_updates"] == 12
    assert total["announced_bytes"] - total["received_bytes"] == org4 > 0
    assert moved["bytes_without_selection"] - moved["bytes_with_selection"] == org4
    monkeypatch.syspath_prepend(str(EXAMPLES / "selection-policy"))
    from selection.task import pooled, test

    _, accuracy = test(final_model(result, tmp_path), pooled(0)[1])
    assert accuracy > 0.5
    assert result["rounds"][-1]["serverapp.central_acc"] == pytest.approx(accuracy)


FEDMEDIAN_APP = {
    "pyproject.toml": """\
        [tool.flwr.app]
        publisher = "fedchain-tests"
        [tool.flwr.app.components]
        serverapp = "median_app:server"
        clientapp = "median_app:client"
        [tool.flwr.app.config]
        num-server-rounds = 1
        """,
    "median_app.py": """\
        from flwr.app import ArrayRecord
        from flwr.clientapp import ClientApp
        from flwr.serverapp import ServerApp
        from flwr.serverapp.strategy import FedMedian
        import numpy as np

        server, client = ServerApp(), ClientApp()

        @server.main()
        def main(grid, context):
            FedMedian().start(grid=grid, initial_arrays=ArrayRecord([np.zeros(2)]), num_rounds=1)
        """,
}


def _secure_server(tmp_path: Path, pki: Path, app: str) -> str:
    """``fedchain-server --secure --app APP`` with no organization: its last stderr line."""
    proc = subprocess.run(
        [sys.executable, "-m", "fedchain.cli.server", "--pki", str(pki), "--ledger",
         str(tmp_path / "ledger.sqlite"), "--address", "127.0.0.1:0", "--app", app, "--secure"],
        cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=WAIT,
    )  # fmt: skip
    assert proc.returncode != 0, proc.stderr[-2000:]
    return proc.stderr.strip().splitlines()[-1]


def test_secure_refuses_a_strategy_that_needs_individual_updates_in_one_line(
    tmp_path: Path, consortium_dir: Path
) -> None:
    app = tmp_path / "median"
    app.mkdir()
    for name, text in FEDMEDIAN_APP.items():
        (app / name).write_text(textwrap.dedent(text))
    last = _secure_server(tmp_path, consortium_dir, str(app))
    assert last == "error: FedMedian needs individual updates; it cannot aggregate a secure sum"


def test_secure_refuses_an_app_that_wraps_its_strategy_in_ledger_strategy_itself(
    tmp_path: Path, consortium_dir: Path
) -> None:
    """The built-in app records its rounds itself: --secure cannot reach inside, so it says so
    rather than run without secure aggregation."""
    last = _secure_server(tmp_path, consortium_dir, "fedchain.examples.digits:server_app")
    assert last.startswith("error: --secure: the app wraps its strategy in LedgerStrategy")


def _accuracy_of_saved(app: str, path: Path) -> float:
    """Hold-out accuracy of the model file an example's ServerApp saved."""
    if app == "pytorch-hospitals":
        import torch
        from hospitals.task import new_model, pooled, test

        model = new_model(0)
        model.load_state_dict(torch.load(path))
        return test(model, pooled(0)[1])[1]
    from tabular.task import pooled as tabular_pooled
    from tabular.task import test as tabular_test

    with np.load(path) as saved:
        params = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    return tabular_test(params, tabular_pooled(0)[1])[1]


@pytest.mark.parametrize(
    ("app", "saved", "chance"),
    [("pytorch-hospitals", "final_model.pt", 0.1), ("tabular-secagg-dp", "final_model.npz", 0.63)],
)
def test_an_example_runs_unchanged_in_flower_s_simulation(
    app: str, saved: str, chance: float, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    app_on_path: None,
) -> None:  # fmt: skip
    """Flower's public ``run_simulation`` (no run config: the app falls back on its own
    pyproject's), Ray-backed, three virtual nodes."""
    pytest.importorskip("ray")
    if app == "pytorch-hospitals":
        pytest.importorskip("torch")
    proc = subprocess.run(
        [sys.executable, "-m", "tests.integration.examples_flower_sim", str(EXAMPLES / app), "3"],
        cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=4 * WAIT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / saved).is_file(), proc.stderr[-3000:]
    monkeypatch.syspath_prepend(str(EXAMPLES / app))
    assert _accuracy_of_saved(app, tmp_path / saved) > chance + 0.2


def test_an_organization_that_did_not_opt_in_is_recorded_as_dropped(deployment: Deployment) -> None:
    """``fedchain-server --secure`` with org3 started without ``--secure``: its unchanged app
    fails the setup message, the ledger says where it dropped, and the other two finish."""
    app = str(EXAMPLES / "tabular-secagg-dp")
    agg = deployment.server(rounds=1, app=app, extra=("--secure",))
    address = str(agg.event("listening")["address"])
    clients = [
        deployment.client(org, address, app=app, extra=("--secure",) if org != "org3" else ())
        for org in ("org1", "org2", "org3")
    ]
    agg.expect_exit(0, timeout=4 * WAIT)
    for client in clients:
        client.expect_exit(0)
    close = closes(deployment.ledger)[1]
    assert by_org(close["dropouts"], "stage") == {"org3": "secagg.advertise_keys"}
    assert sorted(a["org"] for a in close["aggregated"]) == ["org1", "org2"]
    assert close["model_sha256"] is not None
