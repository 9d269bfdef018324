"""``fedchain pki org`` and ``fedchain pki consortium``: the key ceremony, one organization at a
time, on its own machine (see :mod:`fedchain.pki.ceremony` for the protocol).

    fedchain pki org init --org org2 --out org2-pki          # keys stay in org2-pki
    fedchain pki org export --pki org2-pki --org org2 --out org2.json   # public; tell the sha256
    fedchain pki consortium propose --name c --aggregator org1 --bundle org1.json ... --out c.json
    fedchain pki consortium sign --definition c.json --pki org2-pki --org org2 --expect org1=SHA,...
    fedchain pki consortium join --definition c.json --pki org2-pki
    fedchain pki org node --pki org2-pki --org org2 --identity client1 --out org2-node
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from fedchain.cli._common import console, password_from_env, run_cli, split_csv
from fedchain.errors import PKIError
from fedchain.pki.ceremony import Definition, parse_bundle, parse_definition, propose, read_bundle
from fedchain.pki.membership import join_definition, sign_definition, write_atomically
from fedchain.pki.node import write_node_folder
from fedchain.pki.store import init_org, move_aside

__all__ = ["consortium_app", "org_app"]

org_app = typer.Typer(name="org", help="One organization's own CAs, identities and bundle.",
                      no_args_is_help=True)  # fmt: skip
consortium_app = typer.Typer(
    name="consortium", help="Form a consortium from public bundles, signed by every member.",
    no_args_is_help=True,
)  # fmt: skip

_EXPECT_HELP = "ORG=SHA256,... : each other member's bundle fingerprint, as it told you."
PasswordEnv = Annotated[
    str | None, typer.Option(help="Environment variable holding the key password.")
]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PKIError(f"cannot read {path}: {exc.strerror}") from exc


def _definition(path: Path) -> Definition:
    return parse_definition(_read(path), str(path))


@org_app.command("init")
@run_cli
def org_init_command(
    org: Annotated[str, typer.Option(help="This organization's id (its Fabric MSP id).")],
    out: Annotated[Path, typer.Option(help="Folder to create for this organization's keys.")],
    clients: Annotated[int, typer.Option(help="Client identities.")] = 1,
    aggregator: Annotated[
        bool, typer.Option("--aggregator", help="This organization runs the aggregator.")
    ] = False,
    hosts: Annotated[
        str | None, typer.Option(help="Host names/IPs for the aggregator's TLS certificate.")
    ] = None,
    password_env: PasswordEnv = None,
    force: Annotated[bool, typer.Option("--force", help="Move an existing OUT aside.")] = False,
) -> None:
    """Create this organization's signing and TLS CAs and its identities (private: keep OUT)."""
    now = datetime.now(UTC)
    password = password_from_env(password_env)
    moved = move_aside(out, now=now) if force else None
    bundle = init_org(out, org, clients=clients, aggregator=aggregator, hosts=split_csv(hosts),
                      password=password, now=now)  # fmt: skip
    if moved is not None:
        console.print(f"[yellow]previous contents of {out} moved to {moved}[/yellow]")
    console.print(f"created organization [bold]{org}[/bold] in {out}; its bundle fingerprint:")
    typer.echo(bundle.fingerprint)


@org_app.command("export")
@run_cli
def org_export_command(
    pki: Annotated[Path, typer.Option(help="This organization's folder.")],
    org: Annotated[str, typer.Option(help="This organization's id.")],
    out: Annotated[Path, typer.Option(help="Bundle file to write (public).")],
) -> None:
    """Write the public bundle (CAs, admin certificate); print the fingerprint to tell others."""
    bundle = read_bundle(pki, org)
    write_atomically(out, bundle.to_json())
    console.print(f"bundle of [bold]{org}[/bold] written to {out}; tell the others, out of band:")
    typer.echo(f"{org}={bundle.fingerprint}")


@org_app.command("node")
@run_cli
def org_node_command(
    pki: Annotated[Path, typer.Option(help="This organization's folder (after `join`).")],
    org: Annotated[str, typer.Option(help="This organization's id.")],
    identity: Annotated[str, typer.Option(help="The identity the node runs as (client1...).")],
    out: Annotated[Path, typer.Option(help="Folder to create (must not exist).")],
    password_env: PasswordEnv = None,
) -> None:
    """Write what one server or client needs (public consortium files and one identity, no CA
    key) for it to use as --pki."""
    write_node_folder(pki, org, identity, out, password=password_from_env(password_env))
    console.print(f"node folder of [bold]{org}/{identity}[/bold] written to {out} "
                  "(no CA keys); run the node with --pki pointing there")  # fmt: skip


@consortium_app.command("propose")
@run_cli
def propose_command(
    name: Annotated[str, typer.Option(help="Consortium name.")],
    aggregator: Annotated[str, typer.Option(help="The organization that aggregates.")],
    bundle: Annotated[list[Path], typer.Option(help="A member's bundle file (repeat).")],
    out: Annotated[Path, typer.Option(help="Definition file to write (unsigned).")],
    previous: Annotated[
        Path | None, typer.Option(help="The definition this one extends (to add members).")
    ] = None,
) -> None:
    """Assemble bundles into an unsigned consortium definition for every member to sign."""
    bundles = [parse_bundle(_read(p), str(p)) for p in bundle]
    defn = propose(name, aggregator, bundles, _definition(previous) if previous else None)
    write_atomically(out, defn.to_json())
    console.print(f"definition of [bold]{name}[/bold] v{defn.version} written to {out}:")
    for b in defn.orgs:
        typer.echo(f"{b.org}={b.fingerprint}")


@consortium_app.command("sign")
@run_cli
def sign_command(
    definition: Annotated[Path, typer.Option(help="The definition file (signed in place).")],
    pki: Annotated[Path, typer.Option(help="This organization's folder.")],
    org: Annotated[str, typer.Option(help="This organization's id.")],
    expect: Annotated[str, typer.Option(help=_EXPECT_HELP)],
    password_env: PasswordEnv = None,
) -> None:
    """Sign the definition as this organization's admin, after checking every other bundle."""
    expected: dict[str, str] = {}
    for item in split_csv(expect):
        member, sep, sha = item.partition("=")
        if not sep or not member or not sha:
            raise PKIError(f"--expect takes ORG=SHA256 pairs, not {item!r}")
        expected[member.strip()] = sha.strip()
    signed = sign_definition(_definition(definition), pki, org, expected,
                             password=password_from_env(password_env))  # fmt: skip
    write_atomically(definition, signed.to_json())
    missing = signed.unsigned()
    console.print(
        f"signed as {org}; "
        + (f"still to sign: {', '.join(missing)}" if missing else "every member has signed")
    )


@consortium_app.command("join")
@run_cli
def join_command(
    definition: Annotated[Path, typer.Option(help="The definition every member signed.")],
    pki: Annotated[Path, typer.Option(help="This organization's folder.")],
) -> None:
    """Accept the signed definition: install the members' public MSPs and consortium.json."""
    cons = join_definition(_definition(definition), pki)
    console.print(
        f"{pki} joined consortium [bold]{cons.name}[/bold] "
        f"({', '.join(cons.orgs)}; aggregator {cons.aggregator})"
    )
