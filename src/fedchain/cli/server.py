"""``fedchain-server``: the aggregator organization's process."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fedchain.cli._common import (
    VersionOption,
    configure_logging,
    console,
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
    load,
    server_options,
)
from fedchain.cli.progress import EventSink
from fedchain.runtime.apps import resolve_app
from fedchain.runtime.process import ServerOptions, serve
from fedchain.runtime.run_config import effective_run_config

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

Opt = typer.Option


@app.command()
@run_cli
def server(
    config: ConfigOpt = None,
    version: VersionOption = False,
    app_ref: Annotated[
        str | None, Opt("--app", help="ServerApp as module:attr or a Flower app directory")
    ] = None,
    rounds: Annotated[int | None, Opt(min=1, help="Number of rounds")] = None,
    pki: Annotated[Path | None, Opt(help="Consortium PKI folder (fedchain pki init)")] = None,
    identity: Annotated[Path | None, Opt(help="Aggregator identity folder (MSP layout)")] = None,
    ledger: LedgerOpt = None,
    ledger_backend: LedgerBackendOpt = None,
    address: Annotated[str | None, Opt(help="Data-plane listen address host:port")] = None,
    models: Annotated[Path | None, Opt(help="Folder for global models, stored by SHA-256")] = None,
    run: Annotated[
        str | None, Opt(help="Run id (default: resume the unfinished run or start one)")
    ] = None,
    deadline: Annotated[float | None, Opt(help="Seconds to wait for replies per task")] = None,
    min_replies: Annotated[
        int | None, Opt(help="Quorum: fewest valid replies to aggregate")
    ] = None,
    min_nodes: Annotated[
        int | None, Opt(help="Wait until this many organizations are connected")
    ] = None,
    wait_for: Annotated[
        int | None, Opt(help="Proceed once this many replies are announced")
    ] = None,
    selection: Annotated[str | None, Opt(help="all | top-k | threshold")] = None,
    selection_key: Annotated[str | None, Opt(help="Metadata key for top-k / threshold")] = None,
    k: Annotated[int | None, Opt(help="k for top-k")] = None,
    threshold: Annotated[float | None, Opt(help="Minimum value for threshold selection")] = None,
    max_payload_mb: Annotated[
        float | None, Opt(help="Largest model or reply accepted, in MiB")
    ] = None,
    secure: Annotated[
        bool, Opt(help="Secure aggregation around the app's strategy (pairwise masking)")
    ] = False,
    max_weight: Annotated[
        int | None, Opt(min=1, help="With --secure: the largest sample count of one org")
    ] = None,
    password_env: PasswordEnvOpt = None,
    insecure_dev: InsecureDevOpt = False,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Run the aggregator: coordinate rounds on the ledger, move models over mTLS gRPC."""
    configure_logging(verbose)
    options = server_options(
        load(config),
        app=app_ref,
        rounds=rounds,
        pki=pki,
        identity=identity,
        ledger=ledger,
        ledger_backend=ledger_backend,
        address=address,
        models=models,
        run=run,
        deadline=deadline,
        min_replies=min_replies,
        min_nodes=min_nodes,
        wait_for=wait_for,
        selection=selection,
        max_payload_mb=max_payload_mb,
        selection_key=selection_key,
        k=k,
        threshold=threshold,
        secure=secure,
        max_weight=max_weight,
        password=password_from_env(password_env),
        insecure_dev=insecure_dev,
    )
    planned = _planned_rounds(options)
    with EventSink(as_json=json_output, rounds=planned, label="aggregator") as sink:
        run_id = serve(options, sink)
    if not json_output:
        console.print(f"run [bold]{run_id}[/] finished; ledger: {options.ledger.describe()}")


def _planned_rounds(options: ServerOptions) -> int | None:
    """The app's ``num-server-rounds`` (after ``--rounds``), for the progress bar."""
    config = effective_run_config(resolve_app(options.app, "serverapp"), options.run_config,
                                  options.rounds)  # fmt: skip
    value = config.get("num-server-rounds")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
