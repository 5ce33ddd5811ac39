"""``herald worker``: delivery in a process of its own, beside ``herald serve``."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from herald.cli.common import (
    DatabaseOption,
    console,
    fail,
    listen,
    run_app,
    settings_for,
    store_for,
)


def worker(
    database: DatabaseOption = None,
    host: Annotated[
        str | None,
        typer.Option(help="Address of /health, /ready and /metrics (default 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Their port (default 9464).", min=1, max=65535)
    ] = None,
) -> None:
    """Deliver events to event handlers (run serve with HERALD_DELIVERY_ENABLED=false)."""
    from herald.sealing import load_box
    from herald.store import StoreError

    settings = settings_for(database)
    updates = {k: v for k, v in {"worker_host": host, "worker_port": port}.items() if v}
    settings = settings.model_copy(update=updates)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(message)s")
    store = store_for(database)  # a clear error now if the database cannot be opened
    try:
        store.nodes.lease(settings.node_id)  # or if no node id can be leased
    except StoreError as exc:
        fail(f"cannot lease a node id: {exc}")
    finally:
        store.close()
    try:
        load_box(settings)
    except ValueError as exc:
        fail(f"cannot load the key that seals handler secrets: {exc}")
    sock = listen(settings.worker_host, settings.worker_port)  # taken: fails before the line
    console.print(
        f"Herald delivery worker on {settings.database_url}; health and metrics on "
        f"http://{settings.worker_host}:{settings.worker_port}",
        highlight=False,
        markup=False,
    )
    from herald.cli.worker_app import create_worker_app  # the web stack: only when it runs

    run_app(create_worker_app(settings), sock, settings.log_level)
