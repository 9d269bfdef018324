"""``fedchain audit``: verify an embedded ledger file and print what each round recorded."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.table import Table

from fedchain.cli._common import console, fail, run_cli
from fedchain.cli.options import load
from fedchain.config import Settings
from fedchain.errors import LedgerCorrupted, LedgerError
from fedchain.ledger.audit import MODEL_SUFFIX, audit, check_models
from fedchain.ledger.audit_report import AuditReport, ModelCheck, RoundSummary
from fedchain.ledger.base import Ledger
from fedchain.ledger.checkpoint import Checkpoint, Head, check_extends
from fedchain.ledger.embedded import EmbeddedLedger
from fedchain.ledger.factory import open_for_reading
from fedchain.ledger.replay import replay_table
from fedchain.pki import Consortium, load_consortium

__all__ = ["audit_command"]


@run_cli
def audit_command(
    ledger: Annotated[
        Path | None, typer.Option("--ledger", help="The embedded ledger file.")
    ] = None,
    models: Annotated[
        Path | None,
        typer.Option("--models", help=f"Folder of global models named <sha256>{MODEL_SUFFIX}."),
    ] = None,
    pki: Annotated[
        Path | None,
        typer.Option("--pki", help="Consortium folder: also check the ledger is of these CAs."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="fedchain.toml naming the ledger (e.g. a Fabric channel)."),
    ] = None,
    expect_head: Annotated[
        list[str] | None,
        typer.Option(
            "--expect-head", metavar="SEQ:HASH",
            help="A head seen earlier: fail unless the ledger still holds it (repeatable).",
        ),
    ] = None,
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoint", help="An organization's checkpoint file: the same, signature checked.",
        ),
    ] = None,
) -> None:
    """Verify every entry (hash chain, signatures, certificates, write rules); exit 1 naming
    the first bad entry. With --models, check the model files against their recorded hashes.
    With --expect-head / --checkpoint, also prove the ledger extends heads seen earlier (it
    neither went backwards nor forked)."""
    heads = [Head.parse(text) for text in expect_head or []]
    if ledger is None:
        settings = load(config)
        if settings.ledger.backend != "embedded":
            _replay_backend(settings, pki, as_json, models, heads, checkpoint or [])
            return
        ledger = settings.ledger.path
    trusted = load_consortium(pki) if pki is not None else None
    try:
        if as_json:
            report = audit(ledger, models_dir=models, trusted=trusted)
        else:
            with console.status(f"verifying {ledger} ..."):
                report = audit(ledger, models_dir=models, trusted=trusted)
        with EmbeddedLedger.open(ledger) as handle:
            _check_heads(handle, heads, checkpoint or [])
    except LedgerCorrupted as exc:
        if as_json:
            typer.echo(json.dumps({"ok": False, "seq": exc.seq, "error": exc.detail}, indent=2))
        raise
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2, sort_keys=True))
    else:
        _print(report)
    if not report.ok and report.models is not None:
        _models_fail(report.models)


def _check_heads(handle: Ledger, heads: list[Head], checkpoints: list[Path]) -> None:
    """LedgerRolledBack unless ``handle`` holds every expected head and checkpointed head."""
    consortium = None
    for path in checkpoints:
        if consortium is None:
            consortium = _consortium_of(handle)
        Checkpoint.load(path, consortium).check(handle)
    for head in heads:
        check_extends(handle, head)


def _consortium_of(handle: Ledger) -> Consortium:
    """The consortium recorded in entry 0 (whose CAs a checkpoint's signer must chain to)."""
    if isinstance(handle, EmbeddedLedger):
        return handle.consortium
    raise LedgerError("--checkpoint needs an embedded ledger; use --expect-head for Fabric")


def _replay_backend(
    settings: Settings, pki: Path | None, as_json: bool, models: Path | None,
    heads: list[Head], checkpoints: list[Path],
) -> None:  # fmt: skip
    """A ledger that is not a local file (Fabric): replay every record through the write
    rules, reading it as this organization (Fabric itself protects blocks and endorsements);
    with ``models``, check the model files against the hashes the records name."""
    handle = open_for_reading(settings, pki)
    try:
        entries = handle.metadata_get()
        _check_heads(handle, heads, checkpoints)
    finally:
        handle.close()
    try:
        table = replay_table(entries)
    except LedgerCorrupted as exc:
        if as_json:
            typer.echo(json.dumps({"ok": False, "seq": exc.seq, "error": exc.detail}, indent=2))
        raise
    rows = table.rows()
    checked = check_models(models, table.model_hashes) if models is not None else None
    ok = checked is None or not checked.mismatched
    if as_json:
        report: dict[str, object] = {
            "ok": ok, "entries": len(entries), "rounds": [asdict(r) for r in rows],
        }  # fmt: skip
        if checked is not None:
            report["models"] = asdict(checked)
        typer.echo(json.dumps(report, indent=2, sort_keys=True))
    else:
        table_out = Table(
            "run", "round", "status", "participants", "num_examples", "aggregated", "dropouts",
            "rejected", "global model", "metrics",
            title=f"rounds recorded on {settings.ledger.backend}",
        )  # fmt: skip
        for row in rows:
            table_out.add_row(*_cells(row))
        console.print(table_out)
        console.print(f"[green]write rules hold[/green] for all {len(entries)} records")
        if checked is not None:
            _print_models(checked)
    if checked is not None and checked.mismatched:
        _models_fail(checked)


def _models_fail(checked: ModelCheck) -> NoReturn:
    bad = ", ".join(f"{sha}{MODEL_SUFFIX}" for sha in checked.mismatched)
    raise fail(f"model files in {checked.directory} differ from their ledger hash: {bad}")


def _print_models(models: ModelCheck) -> None:
    console.print(
        f"models in {models.directory}: {len(models.verified)} verified, "
        f"{len(models.missing)} missing, {len(models.mismatched)} altered"
    )
    for sha in models.missing:
        console.print(f"  [yellow]missing[/yellow] {sha}{MODEL_SUFFIX}")


def _print(report: AuditReport) -> None:
    table = Table(
        "run", "round", "status", "participants", "num_examples", "aggregated", "dropouts",
        "rejected", "global model", "metrics", title=f"rounds recorded in {report.path}",
    )  # fmt: skip
    for row in report.rounds:
        table.add_row(*_cells(row))
    if report.rounds:
        console.print(table)
    console.print(
        f"[green]ledger intact[/green]: {report.entries} entries verified (hash chain, "
        f"signatures, certificates, write rules); consortium [bold]{report.consortium}[/bold], "
        f"aggregator {report.aggregator}, head {report.head_hash[:16]}…"
    )
    # The whole head, to pass to a later audit as --expect-head.
    console.print(f"head {report.entries - 1}:{report.head_hash}", soft_wrap=True)
    if report.models is not None:
        _print_models(report.models)


def _cells(row: RoundSummary) -> list[str]:
    examples = ", ".join(f"{org}={n}" for org, n in row.num_examples.items())
    rejected = ", ".join(f"{r['org']} ({r['reason']})" for r in row.rejected)
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in row.metrics.items())
    return [
        row.run, str(row.round), "closed" if row.closed else "open",
        ", ".join(row.participants), examples, ", ".join(row.aggregated) or "-",
        ", ".join(row.dropouts) or "-", rejected or "-",
        (row.model_sha256 or "-")[:16], metrics or "-",
    ]  # fmt: skip
