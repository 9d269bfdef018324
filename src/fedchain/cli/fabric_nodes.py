"""``fedchain pki fabric-nodes``: peer and orderer identities for a Fabric network.

A thin command over :func:`fedchain.pki.fabric_nodes.init_fabric_nodes`; ``fabric-network/``
and the compose demo in ``docker/`` call it after ``fedchain pki init``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fedchain.cli._common import console, password_from_env, run_cli, split_csv
from fedchain.pki.fabric_nodes import (
    DEFAULT_ORDERER,
    DEFAULT_ORDERER_ORG,
    DEFAULT_PEER,
    init_fabric_nodes,
)

__all__ = ["fabric_nodes_command"]


@run_cli
def fabric_nodes_command(
    out: Annotated[Path, typer.Option(help="Folder for the node identities (kept if current).")],
    pki: Annotated[
        Path | None,
        typer.Option(help="This organization's consortium folder (holding its CA keys)."),
    ] = None,
    org: Annotated[
        str | None,
        typer.Option(help="Organizations to issue peers for (default: whose CA keys --pki holds)."),
    ] = None,
    no_orderer: Annotated[
        bool, typer.Option("--no-orderer", help="Issue no orderer organization nodes.")
    ] = False,
    orderer_org: Annotated[
        str, typer.Option(help="Id (and MSP id) of the orderer organization.")
    ] = DEFAULT_ORDERER_ORG,
    peer: Annotated[str, typer.Option(help="Peer name in every organization.")] = DEFAULT_PEER,
    orderer: Annotated[str, typer.Option(help="Orderer node name.")] = DEFAULT_ORDERER,
    hosts: Annotated[
        str | None,
        typer.Option(help="Extra TLS host names/IPs for every node (besides <node>.<org>)."),
    ] = None,
    password_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the CA key password.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Issue peers, each from its own organization's CAs, and the orderer organization's nodes."""
    nodes = init_fabric_nodes(
        pki, out, orgs=split_csv(org) if org is not None else None, orderer_org=orderer_org,
        with_orderer=not no_orderer, peer=peer, orderer=orderer, hosts=split_csv(hosts),
        password=password_from_env(password_env),
    )  # fmt: skip
    if as_json:
        rows = [
            {"org": n.org, "name": n.name, "role": n.role, "path": str(n.path),
             "hosts": list(n.hosts), "created": n.created}
            for n in nodes
        ]  # fmt: skip
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("org", "node", "role", "TLS host names", "status", title=f"Fabric nodes in {out}")
    for n in nodes:
        names = ", ".join(["localhost", "127.0.0.1", *n.hosts]) if n.role != "admin" else "-"
        table.add_row(n.org, n.name, n.role, names, "created" if n.created else "kept")
    console.print(table)
