"""What the commands share: options, the store, the console, friendly failures."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console

from herald.audit import AuditLog
from herald.collector import tune_for_batches
from herald.config import Settings
from herald.store import Store, StoreError, open_store
from herald.store.sqlite import sqlite_path

if TYPE_CHECKING:
    import uvicorn

# Piped output is read by scripts and people alike: do not cut tables at 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=200)
errors = Console(stderr=True)

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        "-d",
        help="Database URL (default sqlite:///herald.db; env HERALD_DATABASE_URL).",
        show_default=False,
    ),
]


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a clear error (no traceback) and exit."""
    errors.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def settings_for(database: str | None) -> Settings:
    settings = Settings()
    return settings.model_copy(update={"database_url": database}) if database else settings


def missing_database(url: str) -> str | None:
    """Why a command that only uses a database cannot: its SQLite file does not exist (only
    serve, db migrate and simulate --backfill create one)."""
    if not url.startswith("sqlite:"):
        return None  # a PostgreSQL database that does not exist fails to connect
    try:
        path = Path(sqlite_path(url))
    except ValueError as exc:
        return str(exc)
    if path.exists():
        return None
    return f"no database at {path}; create it with `herald db migrate` (or `herald serve`)"


def store_for(database: str | None, *, create: bool = False) -> Store:
    """The store a command works on, migrated; a clear error if it cannot open (or, unless
    ``create``, does not exist)."""
    settings = settings_for(database)
    missing = None if create else missing_database(settings.database_url)
    if missing is not None:
        fail(missing)
    try:
        return open_store(
            settings.database_url,
            sqlite_synchronous=settings.sqlite_synchronous,
            retention_days=settings.retention_days,
        )
    except (ValueError, StoreError) as exc:
        fail(f"cannot open database {settings.database_url}: {exc}")


def audit_for(store: Store, database: str | None) -> AuditLog:
    """The audit log of a command's actions (off when ``HERALD_AUDIT_EVENTS=false``)."""
    return AuditLog(store, enabled=settings_for(database).audit_events)


def api_url() -> str:
    return os.environ.get("HERALD_URL", "http://127.0.0.1:8080")


def run_app(
    app: Any,
    host: str,
    port: int,
    log_level: str,
    server: type[uvicorn.Server] | None = None,
    trusted_proxies: list[str] | None = None,
) -> None:
    """Serve ``app`` (ASGI) until a stop signal, the garbage collector set for batches of
    events. uvicorn is imported here: the other commands start without the web stack.

    ``X-Forwarded-For``/``-Proto`` are believed only from ``trusted_proxies`` (uvicorn's
    own default trusts them from loopback: a client on the host could pick its address)."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=list(trusted_proxies or []),
    )
    tune_for_batches()
    (server or uvicorn.Server)(config).run()
