"""The ``herald`` command line: serve, org, token, events."""

from __future__ import annotations

import typer

from herald.cli import admin, events, serve
from herald.cli import db as db_cli
from herald.cli import handler as handler_cli
from herald.cli import rule as rule_cli
from herald.cli import simulate as simulate_cli
from herald.cli import worker as worker_cli

app = typer.Typer(
    name="herald",
    help="Herald: the open-source event platform for IoT connectivity.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("serve")(serve.serve)
app.command("simulate")(simulate_cli.simulate)
app.add_typer(admin.org_app, name="org")
app.add_typer(admin.token_app, name="token")
app.add_typer(admin.ingest_app, name="ingest-credential")
app.add_typer(events.events_app, name="events")
app.add_typer(handler_cli.handler_app, name="handler")
app.add_typer(rule_cli.rule_app, name="rule")
app.command("worker")(worker_cli.worker)
app.add_typer(db_cli.db_app, name="db")


def main() -> None:
    """Entry point of the ``herald`` script."""
    app()
