"""``herald serve``: the API (and, later, delivery) in one process."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from herald.cli.common import DatabaseOption, console, fail, listen, run_app, settings_for

if TYPE_CHECKING:
    import socket
    from types import FrameType

    from herald.config import Settings
    from herald.store import Store

DEMO_ORGANISATIONS = 3  # herald.simulate.demo's, checked by a test: not imported for --help


def bootstrap(settings: Settings) -> tuple[Path | None, str | None]:
    """On a database without tokens, create a first organisation and an internal token; and
    what the demo will do to the database (None: nothing).

    The token goes to a file beside the database (mode 0600), never to the log.
    """
    from herald.auth import issue_token
    from herald.store import open_store
    from herald.store.sqlite import sqlite_path

    store = open_store(
        settings.database_url,
        sqlite_synchronous=settings.sqlite_synchronous,
        retention_days=settings.retention_days,
    )
    try:
        demo = _demo_notice(store, settings) if settings.demo else None
        if store.organisations.count_tokens():
            return None, demo
        if not store.organisations.all():
            store.organisations.create("Demo organisation" if settings.demo else "My organisation")
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
    return path, demo


def _demo_notice(store: Store, settings: Settings) -> str | None:
    """What the demo does to this database, said before it does it."""
    from herald.cli.db import redacted
    from herald.simulate.demo import DEMO_MARK

    off = "start with --no-demo (or HERALD_DEMO=false) to run without it"
    if store.meta.get(DEMO_MARK) is not None:
        return f"Demo: the demo fleet in this database gets a few live events a second; {off}."
    if store.log.last_seq() > 0:
        return None  # real events: never a demo
    return (
        f"Demo: seeding a demo fleet ({DEMO_ORGANISATIONS} organisations named as demo ones, "
        f"{settings.demo_devices} devices, a day of history, then a few live events a second) "
        f"into {redacted(settings.database_url)}; {off}, and use a new database for real data."
    )


def _run(settings: Settings, sock: socket.socket) -> None:
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
        sock,
        settings.log_level,
        Server,
        trusted_proxies=settings.trusted_proxy_list,
    )


def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default 127.0.0.1; env HERALD_HOST).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default 8080; env HERALD_PORT).", min=1, max=65535)
    ] = None,
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
    from herald.sealing import load_box
    from herald.store import StoreError

    settings = settings_for(database)
    updates = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = settings.model_copy(update={**updates, "demo": demo})
    sock = listen(settings.host, settings.port)  # a taken port fails now, before any output
    try:
        token_file, demo_notice = bootstrap(settings)
    except (ValueError, StoreError) as exc:
        fail(f"cannot open database {settings.database_url}: {exc}")
    try:
        load_box(settings)  # a clear error now rather than a failed startup
    except ValueError as exc:
        fail(f"cannot load the key that seals handler secrets: {exc}")
    if token_file:
        console.print(
            Text.assemble(
                "First start: an internal admin token was written to ",
                (str(token_file), "bold"),
                " (sign in to the console or call the API with it).",
            )
        )
    if demo_notice:
        console.print(demo_notice, highlight=False, markup=False, soft_wrap=True)
    console.print(
        f"Herald on http://{settings.host}:{settings.port}  (API docs: /api/docs)",
        highlight=False,
        markup=False,
    )
    _run(settings, sock)
