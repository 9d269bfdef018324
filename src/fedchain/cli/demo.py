"""``fedchain demo``: the one-machine consortium, with live progress and a final report."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from fedchain.cli._common import console, run_cli
from fedchain.cli.progress import EventSink
from fedchain.cli.rounds import MODEL_PREFIX
from fedchain.runtime.demo_ledgers import DEFAULT_NETWORK  # light: no Flower

if TYPE_CHECKING:
    from fedchain.runtime.demo import DemoResult

Opt = typer.Option


class LedgerChoice(StrEnum):
    """The ledgers the demo runs on."""

    embedded = "embedded"
    fabric = "fabric"


@run_cli
def demo(
    rounds: Annotated[
        int | None,
        Opt(min=1, max=1000, help="Rounds (built-in app: 10; --app: its num-server-rounds)"),
    ] = None,
    workdir: Annotated[Path, Opt(help="Working folder (replaced on each demo run)")] = Path(
        "fedchain-demo"
    ),
    orgs: Annotated[
        int | None, Opt(min=2, max=8, help="Number of organizations (embedded ledger; 3)")
    ] = None,
    secure: Annotated[bool, Opt(help="Secure aggregation (pairwise masking)")] = False,
    ledger: Annotated[
        LedgerChoice, Opt(help="embedded: a new ledger file; fabric: a running Fabric network")
    ] = LedgerChoice.embedded,
    network: Annotated[
        Path,
        Opt(help="With --ledger fabric: the folder of fedchain.toml files network.sh wrote"),
    ] = DEFAULT_NETWORK,
    app: Annotated[
        Path | None, Opt("--app", help="A Flower app directory to run instead of the built-in app")
    ] = None,
    json_output: Annotated[bool, Opt("--json", help="Machine-readable output")] = False,
) -> None:
    """Train the built-in digits app across separate org processes over mTLS, then check the
    ledger (the audit of the embedded file, or the write-rule replay of a Fabric channel)."""
    from fedchain.runtime.demo import run_demo  # heavy (Flower, scikit-learn): only when used

    shown = rounds or (None if app else 10)  # the progress bar's length
    with EventSink(as_json=json_output, rounds=shown, label="demo") as sink:
        result = run_demo(
            workdir, rounds=rounds, orgs=orgs, secure=secure, events=sink,
            ledger=ledger.value, network=network, app=app,
        )  # fmt: skip
    if json_output:
        typer.echo(json.dumps(_summary(result), default=str))
    else:
        _render(result)


def _summary(result: DemoResult) -> dict[str, Any]:
    return {
        "event": "result",
        "run": result.run,
        "ledger": str(result.ledger),
        "accuracy": result.accuracy,
        "baseline": result.baseline,
        "audit_ok": result.check.ok,
        "entries": result.check.entries,
        "verified": result.check.verified,
        "problems": result.check.problems,
        "plot": str(result.plot) if result.plot else None,
        "explorer": result.explorer,
        "rounds": result.rounds,
    }


def _examples(row: dict[str, Any]) -> str:
    """Each organization's sample count, or ``masked``: with secure aggregation the counts
    travel masked inside the updates and the ledger's zeros mean nothing."""
    if row.get("masked"):
        return "masked"
    return " ".join(f"{o}:{n}" for o, n in sorted(row["num_examples"].items()))


def _render(result: DemoResult) -> None:
    table = Table(title=f"ledger: run {result.run}")
    for column in ("round", "participants", "num-examples", "dropouts", "eval acc"):
        table.add_column(column)
    table.add_column("global model", no_wrap=True)
    for row in result.rounds:
        acc = row.get("eval_acc")
        table.add_row(
            str(row["round"]),
            ", ".join(row["participants"]),
            _examples(row),
            ", ".join(row["dropouts"]) or "-",
            "-" if acc is None else f"{acc:.3f}",
            (row["model_sha256"] or "-")[:MODEL_PREFIX],
        )
    console.print(table)
    check = result.check
    status = "[green]intact[/]" if check.ok else "[red]FAILED[/]"
    console.print(f"audit: {status} ({check.entries} entries; {check.verified})")
    for problem in check.problems:
        console.print(f"  [red]{problem}[/]")
    if result.accuracy is not None and result.baseline is not None:
        console.print(
            f"final accuracy on the hold-out set: [bold]{result.accuracy:.3f}[/] "
            f"(centrally trained baseline: {result.baseline:.3f})"
        )
    console.print(f"ledger: {result.ledger}")
    if result.plot is not None:
        console.print(f"plot: {result.plot}")
    console.print(f"explore it in a browser: {result.explorer}", soft_wrap=True, markup=False)
