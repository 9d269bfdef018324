"""``fedchain ledger init|show``: create an embedded ledger, list what it records."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from fedchain.cli._common import console, password_from_env, run_cli
from fedchain.cli.options import load
from fedchain.ledger.base import Entry, Query
from fedchain.ledger.embedded import EmbeddedLedger
from fedchain.ledger.factory import open_for_reading
from fedchain.ledger.records import Record
from fedchain.pki import AGGREGATOR_NAME, identity_dir, load_consortium, load_identity

__all__ = ["app"]

app = typer.Typer(
    name="ledger",
    help="Create an embedded ledger; list any ledger's records.",
    no_args_is_help=True,
)

LedgerPath = Annotated[Path, typer.Option("--ledger", help="The embedded ledger file.")]


@app.command("init")
@run_cli
def init_command(
    ledger: LedgerPath,
    pki: Annotated[Path, typer.Option("--pki", help="Consortium folder ('fedchain pki init').")],
    identity: Annotated[
        Path | None,
        typer.Option(help="Aggregator identity (default <pki>/<aggregator>/users/aggregator)."),
    ] = None,
    password_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the key's password.")
    ] = None,
) -> None:
    """Create a ledger whose first entry records the consortium, signed by the aggregator."""
    consortium = load_consortium(pki)
    folder = identity or identity_dir(pki, consortium.aggregator, AGGREGATOR_NAME)
    signer = load_identity(folder, password=password_from_env(password_env))
    with EmbeddedLedger.create(ledger, consortium, signer) as handle:
        (genesis,) = handle.metadata_get(Query(limit=1))
    console.print(
        f"created ledger {ledger} for consortium [bold]{consortium.name}[/bold] "
        f"({', '.join(consortium.orgs)}; aggregator {consortium.aggregator}); "
        f"entry 0 hash {genesis.hash[:16]}…"
    )


@app.command("show")
@run_cli
def show_command(
    ledger: Annotated[
        Path | None, typer.Option("--ledger", help="The embedded ledger file.")
    ] = None,
    run: Annotated[str | None, typer.Option(help="Only records of this run.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only records of this kind.")] = None,
    org: Annotated[str | None, typer.Option(help="Only records written by this org.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="fedchain.toml naming the ledger (e.g. a Fabric channel)."),
    ] = None,
) -> None:
    """List the ledger's records in order (read-only; use 'fedchain audit' to verify them)."""
    query = Query(run=run, kind=kind, org=org)
    if ledger is not None:
        with EmbeddedLedger.open(ledger) as handle:
            entries = handle.metadata_get(query)
        title = str(ledger)
    else:
        settings = load(config)
        reader = open_for_reading(settings)
        try:
            entries = reader.metadata_get(query)
        finally:
            reader.close()
        title = settings.ledger.describe()
    if as_json:
        typer.echo(json.dumps([_as_json(e) for e in entries], indent=2, sort_keys=True))
        return
    table = Table("seq", "time (UTC)", "kind", "org", "run", "round", "what", title=title)
    for entry in entries:
        record = entry.record
        table.add_row(
            str(entry.seq), _time(entry.ts), record.kind, record.org, record.run or "",
            "" if record.round is None else str(record.round), describe(record),
        )  # fmt: skip
    console.print(table)
    console.print(f"{len(entries)} entries")


def _as_json(entry: Entry) -> dict[str, Any]:
    return {"seq": entry.seq, "hash": entry.hash, "ts": entry.ts, "signer": entry.signer,
            "record": dict(entry.record.data)}  # fmt: skip


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _short(sha: Any) -> str:
    return "-" if sha is None else f"{str(sha)[:12]}…"


def _orgs(items: Any, key: str = "org") -> str:
    return ", ".join(str(i[key]) if isinstance(i, dict) else str(i) for i in items) or "-"


def describe(record: Record) -> str:
    """One readable line for a record."""
    r = record
    match r.kind:
        case "consortium":
            return f"{r['name']}: {_orgs(r['orgs'], 'id')} (aggregator {r['aggregator']})"
        case "run":
            return f"initial model {_short(r['model_sha256'])}, app {_short(r['app_sha256'])}"
        case "task":
            return f"{r['type']} task {r.task} to {_orgs(r['recipients'])}"
        case "update" if r["status"] == "ok":
            return f"update {_short(r['update_sha256'])} from {r['num_examples']} examples"
        case "update":
            return f"error: {r['error']}"
        case "keys":
            return f"public keys {', '.join(sorted(r['keys']))} for {r.task}"
        case "selection":
            return f"selected {_orgs(r['selected'])} of {r.task}"
        case _:
            return (f"model {_short(r['model_sha256'])}; aggregated {_orgs(r['aggregated'])}; "
                    f"dropped {_orgs(r['dropouts'])}; rejected {_orgs(r['rejected'])}")  # fmt: skip
