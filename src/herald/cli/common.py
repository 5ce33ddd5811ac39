"""What the commands share: options, the store, the console, friendly failures."""

from __future__ import annotations

import os
import sys
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from herald.audit import AuditLog
from herald.config import Settings
from herald.store import Store, StoreError, open_store

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


def store_for(database: str | None) -> Store:
    """The store a command works on, migrated; a clear error if it cannot open."""
    settings = settings_for(database)
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
