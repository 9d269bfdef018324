"""``fedchain-client``: one organization's process."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fedchain.cli._common import (
    VersionOption,
    configure_logging,
    password_from_env,
    run_cli,
)
from fedchain.cli.options import (
    ConfigOpt,
    InsecureDevOpt,
    JsonOpt,
    LedgerBackendOpt,
    LedgerOpt,
    PasswordEnvOpt,
    VerboseOpt,
    client_options,
    load,
)
from fedchain.cli.progress import EventSink
from fedchain.runtime.process import participate

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

Opt = typer.Option


@app.command()
@run_cli
def client(
    config: ConfigOpt = None,
    version: VersionOption = False,
    org: Annotated[
        str | None, Opt(help="Organization id (identity <pki>/<org>/users/client1)")
    ] = None,
    app_ref: Annotated[
        str | None, Opt("--app", help="ClientApp as module:attr or a Flower app directory")
    ] = None,
    pki: Annotated[Path | None, Opt(help="Consortium PKI folder")] = None,
    identity: Annotated[
        Path | None, Opt(help="This organization's identity folder (MSP layout)")
    ] = None,
    server: Annotated[str | None, Opt(help="Aggregator data-plane address host:port")] = None,
    ledger: LedgerOpt = None,
    ledger_backend: LedgerBackendOpt = None,
    run: Annotated[str | None, Opt(help="Follow only this run")] = None,
    secure: Annotated[
        bool, Opt(help="Take part in secure aggregation (fedchain-server --secure)")
    ] = False,
    exit_when_done: Annotated[
        bool, Opt(help="Exit when the followed run ends (its ServerApp returned or failed)")
    ] = False,
    password_env: PasswordEnvOpt = None,
    insecure_dev: InsecureDevOpt = False,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Run an organization: follow the ledger, train locally, announce and send updates."""
    configure_logging(verbose)
    options = client_options(
        load(config),
        org=org,
        app=app_ref,
        pki=pki,
        identity=identity,
        server=server,
        ledger=ledger,
        ledger_backend=ledger_backend,
        run=run,
        exit_when_done=exit_when_done,
        secure=secure,
        password=password_from_env(password_env),
        insecure_dev=insecure_dev,
    )
    label = org or options.identity.parent.parent.name
    with EventSink(as_json=json_output, rounds=None, label=label) as sink:
        participate(options, sink)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
