"""The issue's "done when", as a user does it: ``fedchain demo``, then the command it prints
opens the explorer on the demo's ledger, and a browser shows the run, its rounds,
contributions, model lineage (each model checked against its file) and integrity."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.integration.explorer_support import BIN, Explorer
from tests.integration.runtime_support import WAIT, child_env

pytestmark = pytest.mark.slow
ROUNDS = 2


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    workdir = tmp_path_factory.mktemp("explorer-demo") / "demo"
    result = subprocess.run(
        [str(BIN / "fedchain"), "demo", "--rounds", str(ROUNDS), "--workdir", str(workdir),
         "--json"], capture_output=True, text=True, env=child_env(), timeout=WAIT * 4,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return summary


def test_the_demo_prints_the_explorer_command(demo: dict[str, Any]) -> None:
    argv = shlex.split(demo["explorer"])
    assert argv[:4] == ["fedchain", "explorer", "--ledger", demo["ledger"]]
    assert argv[argv.index("--models") + 1] == str(Path(demo["ledger"]).parent / "models")


def test_the_demo_run_in_a_browser(demo: dict[str, Any], browser: Any) -> None:
    args = shlex.split(demo["explorer"])[2:]
    run = demo["run"]
    context = browser.new_context()
    page = context.new_page()
    try:
        with Explorer(*args) as explorer:
            page.goto(explorer.url + "/")
            row = page.locator(f'tr[data-run="{run}"]')
            assert row.locator("td.done").inner_text() == f"{ROUNDS} of {ROUNDS}"
            assert row.locator("td.status").inner_text() == "finished"
            page.goto(f"{explorer.url}/run/{run}")
            assert page.locator("#rounds tbody tr").count() == ROUNDS
            last = page.locator(f'#rounds tr[data-round="{ROUNDS}"] .tag.end')
            assert last.inner_text() == "run ended"  # the close record's fedchain:run-end
            charts = page.locator("svg.chart")
            assert charts.count() >= 2  # eval_acc, eval_loss, train_loss
            for i in range(charts.count()):
                assert charts.nth(i).locator("circle.pt").count() == ROUNDS
            page.goto(explorer.url + "/integrity")  # the audit, with the model files
            assert page.locator("#verdict h2").inner_text() == "Intact"
            assert str(demo["entries"] - 1) == page.locator("#head-seq").inner_text()
            page.goto(f"{explorer.url}/run/{run}/lineage")
            files = page.locator("#lineage td.file")
            assert [files.nth(i).inner_text() for i in range(files.count())] == \
                ["verified"] * (ROUNDS + 1)  # fmt: skip
            page.goto(f"{explorer.url}/run/{run}/contributions")
            orgs = page.locator("#contributions tbody tr")
            assert orgs.count() == 3
            assert all(orgs.nth(i).locator("td").nth(1).inner_text() == str(ROUNDS)
                       for i in range(3))  # fmt: skip
    finally:
        context.close()
