"""The ``herald`` command line: serve, org, token, events."""

from __future__ import annotations

import typer

from herald.cli import admin, events, serve

app = typer.Typer(
    name="herald",
    help="Herald: the open-source event platform for IoT connectivity.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("serve")(serve.serve)
app.add_typer(admin.org_app, name="org")
app.add_typer(admin.token_app, name="token")
app.add_typer(events.events_app, name="events")


def main() -> None:
    """Entry point of the ``herald`` script."""
    app()
