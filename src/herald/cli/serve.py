"""``herald serve``: the API (and, later, delivery) in one process."""

from __future__ import annotations

import os
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from herald.auth import issue_token
from herald.cli.common import DatabaseOption, console, fail, run_app, settings_for
from herald.config import Settings
from herald.sealing import load_box
from herald.store import StoreError, open_store
from herald.store.sqlite import sqlite_path


def bootstrap(settings: Settings) -> Path | None:
    """On a database without tokens, create a first organisation and an internal token.

    The token goes to a file beside the database (mode 0600), never to the log.
    """
    store = open_store(
        settings.database_url,
        sqlite_synchronous=settings.sqlite_synchronous,
        retention_days=settings.retention_days,
    )
    try:
        if store.count_tokens():
            return None
        if not store.list_organisations():
            store.create_organisation("Demo organisation")
        secret, _ = issue_token(
            store, organisation_id=None, permissions=[], internal=True, name="bootstrap"
        )
    finally:
        store.close()
    base = (
        sqlite_path(settings.database_url)
        if settings.database_url.startswith("sqlite")
        else "herald"
    )
    path = Path(base + ".admin-token")
    path.touch(mode=0o600)
    path.write_text(secret + "\n")
    os.chmod(path, 0o600)
    return path


def _run(settings: Settings) -> None:
    """Serve the API until a stop signal. The web stack is imported here, not at the top:
    the other commands (``herald org``, ``herald token``, ...) start without it."""
    import uvicorn

    from herald.api import create_app
    from herald.api.routes.stream import end_live_streams

    class Server(uvicorn.Server):
        """Ends the live streams on a stop signal, so shutdown need not wait for them."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            end_live_streams(self.config.app)
            super().handle_exit(sig, frame)

    run_app(
        create_app(settings),
        settings.host,
        settings.port,
        settings.log_level,
        Server,
        trusted_proxies=settings.trusted_proxy_list,
    )


def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8080).", min=1, max=65535)] = None,
    database: DatabaseOption = None,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo/--no-demo",
            envvar="HERALD_DEMO",
            help="On an empty database, seed a demo fleet and keep a gentle live stream going.",
        ),
    ] = True,
) -> None:
    """Run the Herald API server."""
    settings = settings_for(database)
    updates = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = settings.model_copy(update={**updates, "demo": demo})
    try:
        token_file = bootstrap(settings)
    except (ValueError, StoreError) as exc:
        fail(f"cannot open database {settings.database_url}: {exc}")
    try:
        load_box(settings)  # a clear error now rather than a failed startup
    except ValueError as exc:
        fail(f"cannot load the key that seals handler secrets: {exc}")
    if token_file:
        console.print(
            f"First start: an internal admin token was written to [bold]{token_file}[/] "
            "(sign in to the console or call the API with it)."
        )
    console.print(f"Herald on http://{settings.host}:{settings.port}  (API docs: /api/docs)")
    _run(settings)
