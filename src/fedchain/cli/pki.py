"""``fedchain pki``: create a consortium's CAs and identities, and show what a folder holds."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from fedchain.cli._common import console, password_from_env, run_cli, split_csv
from fedchain.errors import PKIError
from fedchain.pki import (
    describe_consortium,
    init_consortium,
    move_aside,
    validate_init_request,
)

__all__ = ["app"]

app = typer.Typer(
    name="pki",
    help="Organization CAs and identities (Fabric-MSP-style folders).",
    no_args_is_help=True,
)


@app.command("init")
@run_cli
def init_command(
    consortium: Annotated[str, typer.Option(help="Consortium name.")],
    orgs: Annotated[str, typer.Option(help="Comma-separated organization ids, e.g. org1,org2.")],
    out: Annotated[Path, typer.Option(help="Folder to create (must be empty or absent).")],
    aggregator: Annotated[
        str | None,
        typer.Option(help="Organization that aggregates (default: the first of --orgs)."),
    ] = None,
    hosts: Annotated[
        str | None, typer.Option(help="Extra host names/IPs for the aggregator's TLS cert.")
    ] = None,
    clients: Annotated[int, typer.Option(help="Client identities per organization.")] = 1,
    password_env: Annotated[
        str | None,
        typer.Option(help="Environment variable holding a password to encrypt the keys."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Move an existing OUT aside (never deleted).")
    ] = False,
) -> None:
    """Every organization's CAs and identities in one folder, joined into one consortium: the
    key ceremony run for all on one machine (a demo; see 'pki org' and 'pki consortium')."""
    org_list = split_csv(orgs)
    if not org_list:
        raise PKIError("--orgs needs at least one organization id")
    request: dict[str, Any] = {
        "consortium": consortium,
        "orgs": org_list,
        "aggregator": aggregator or org_list[0],
        "hosts": split_csv(hosts),
        "clients": clients,
        "password": password_from_env(password_env),
    }
    validate_init_request(**request)  # before --force moves anything
    now = datetime.now(UTC)
    moved = move_aside(out, now=now) if force else None
    cons = init_consortium(out, now=now, **request)
    if moved is not None:
        console.print(f"[yellow]previous contents of {out} moved to {moved}[/yellow]")
    console.print(
        f"created consortium [bold]{cons.name}[/bold] in {out} "
        f"({len(cons.orgs)} organizations, aggregator [bold]{cons.aggregator}[/bold])"
    )
    _print_summary(describe_consortium(out))
    secret = "encrypted" if request["password"] else "UNENCRYPTED"
    console.print(
        f"private keys ({secret}) are in <org>/ca/ and users/*/msp/keystore/ with mode 0600; "
        "give each organization only its own folder plus the others' <org>/msp/."
    )


@app.command("show")
@run_cli
def show_command(
    pki_dir: Annotated[Path, typer.Argument(help="A folder made by 'fedchain pki init'.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List organizations, identities, fingerprints and expiry dates."""
    info = describe_consortium(pki_dir)
    if as_json:
        typer.echo(json.dumps(info, indent=2, sort_keys=True))
        return
    console.print(
        f"consortium [bold]{info['name']}[/bold] at {info['path']}, "
        f"aggregator [bold]{info['aggregator']}[/bold]"
    )
    _print_summary(info)


def _print_summary(info: dict[str, Any]) -> None:
    """Two rich tables: organizations, then identities (aggregator marked with *)."""
    org_table = Table(
        "organization", "CA sha256", "TLS CA sha256", "CA expires", title="organizations"
    )
    for org in info["orgs"]:
        mark = " *" if org["aggregator"] else ""
        org_table.add_row(
            org["id"] + mark,
            org["ca_sha256"][:16] + "…",
            org["tlsca_sha256"][:16] + "…",
            org["ca_not_valid_after"][:10],
        )
    console.print(org_table)
    id_table = Table("org", "name", "role", "fingerprint", "expires", title="identities")
    for ident in info["identities"]:
        mark = " *" if ident["aggregator"] else ""
        id_table.add_row(
            ident["org"],
            ident["name"] + mark,
            ident["role"],
            ident["fingerprint"][:16] + "…",
            ident["not_valid_after"][:10],
        )
    console.print(id_table)
    console.print("* aggregator")
