"""``fedchain explorer``: serve the read-only ledger view, or write one run's report file."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fedchain.cli._common import console, password_from_env, run_cli
from fedchain.cli.options import load
from fedchain.config import DEFAULT_PKI, Settings
from fedchain.errors import ConfigError
from fedchain.pki import AGGREGATOR_NAME, Consortium, identity_dir, load_consortium, load_identity
from fedchain.transport.tls import split_address

if TYPE_CHECKING:  # aiohttp and jinja2 load only when the command runs
    import ssl

    from fedchain.explorer.source import LedgerSource

__all__ = ["explorer_command"]

Opt = typer.Option
DEFAULT_ADDRESS = "127.0.0.1:8080"


@run_cli
def explorer_command(
    ledger: Annotated[Path | None, Opt("--ledger", help="The embedded ledger file.")] = None,
    config: Annotated[
        Path | None,
        Opt("--config", help="fedchain.toml naming the ledger (e.g. a Fabric channel)."),
    ] = None,
    models: Annotated[
        Path | None, Opt("--models", help="Folder of global models <sha256>.bin to check.")
    ] = None,
    pki: Annotated[
        Path | None,
        Opt("--pki", help="Consortium folder: its CAs are trusted (audit, mTLS clients)."),
    ] = None,
    address: Annotated[
        str, Opt("--address", help="host:port to serve on; not loopback needs mTLS.")
    ] = DEFAULT_ADDRESS,
    identity: Annotated[
        Path | None,
        Opt("--identity", help="Identity whose TLS certificate serves HTTPS (mTLS)."),
    ] = None,
    password_env: Annotated[
        str | None, Opt(help="Environment variable holding the identity key's password.")
    ] = None,
    report: Annotated[
        str | None, Opt("--report", help="Write this run's self-contained HTML report.")
    ] = None,
    out: Annotated[Path | None, Opt("--out", help="The report file (with --report).")] = None,
) -> None:
    """A read-only web view of the ledger: runs, rounds, contributions, model lineage and the
    live integrity verdict. Loopback serves plain HTTP to this machine; any other address (or
    --identity) serves HTTPS to consortium members' client certificates only."""
    from fedchain.explorer.source import LedgerSource  # aiohttp, jinja2: only when used

    if (report is None) != (out is None):
        raise ConfigError("--report RUN and --out FILE go together")
    settings = None if ledger is not None else load(config)
    host, port = split_address(address)
    trusted = load_consortium(pki) if pki is not None else None
    tls = None if report is not None else _tls(settings, pki, identity, password_env, host)
    source = LedgerSource.open(ledger=ledger, settings=settings, pki=pki, models=models,
                               trusted=trusted)  # fmt: skip
    try:
        source.load()
        if report is not None and out is not None:
            _write_report(source, report, out)
            return
        _serve(source, host, port, tls)
    finally:
        source.close()


def _write_report(source: LedgerSource, run: str, out: Path) -> None:
    from fedchain.explorer.render import Renderer

    html = Renderer(source).report(run, source.verdict())
    try:
        out.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror}") from exc
    console.print(f"report of run {run} written to {out}")


def _tls(
    settings: Settings | None, pki: Path | None, identity: Path | None,
    password_env: str | None, host: str,
) -> tuple[ssl.SSLContext, Consortium] | None:  # fmt: skip
    """(SSL context, consortium) for mTLS, or None on loopback without --identity."""
    from fedchain.explorer.access import is_loopback, server_context

    if identity is None and is_loopback(host):
        return None
    org = settings.organization if settings is not None else None
    folder = pki or (org.pki if org is not None and org.pki else None)
    if folder is None:
        if identity is None:
            raise ConfigError(
                f"serving on {host} (not loopback) needs mTLS: give --pki (the consortium "
                "folder) and --identity (a member with a server TLS certificate)"
            )
        folder = DEFAULT_PKI
    consortium = load_consortium(folder)
    if identity is None:
        identity = identity_dir(folder, consortium.aggregator, AGGREGATOR_NAME)
    member = load_identity(identity, password=password_from_env(password_env))
    return server_context(member, consortium), consortium


def _serve(
    source: LedgerSource, host: str, port: int, tls: tuple[ssl.SSLContext, Consortium] | None
) -> None:
    from fedchain.explorer.server import serve

    context, consortium = tls if tls is not None else (None, None)

    def ready(url: str) -> None:
        who = "consortium members' client certificates" if tls else "this machine only"
        typer.echo(f"explorer: {url} (read-only; {who}; Ctrl-C stops)", err=False)

    asyncio.run(serve(source, host, port, tls=context, consortium=consortium, ready=ready))
