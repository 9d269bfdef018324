"""The ``fedchain`` command: sub-commands are registered here, one typer app per area."""

from __future__ import annotations

import typer

from fedchain.cli._common import VersionOption
from fedchain.cli.audit import audit_command
from fedchain.cli.ceremony import consortium_app, org_app
from fedchain.cli.demo import demo
from fedchain.cli.explorer import explorer_command
from fedchain.cli.fabric_nodes import fabric_nodes_command
from fedchain.cli.ledger import app as ledger_app
from fedchain.cli.pki import app as pki_app

app = typer.Typer(
    name="fedchain",
    help="Cross-silo federated learning coordinated and recorded on a ledger.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def main(version: VersionOption = False) -> None:
    """Cross-silo federated learning coordinated and recorded on a ledger."""


pki_app.command(name="fabric-nodes")(fabric_nodes_command)
pki_app.add_typer(org_app, name="org")
pki_app.add_typer(consortium_app, name="consortium")
app.add_typer(pki_app, name="pki")
app.add_typer(ledger_app, name="ledger")
app.command(name="audit")(audit_command)
app.command(name="demo")(demo)
app.command(name="explorer")(explorer_command)


if __name__ == "__main__":
    app()
