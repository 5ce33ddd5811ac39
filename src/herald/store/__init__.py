"""Persistence: the event log and one repository per aggregate (``Store``), a backend per
database (SQLite, PostgreSQL)."""

from __future__ import annotations

from herald.store.base import Store
from herald.store.errors import (
    Conflict,
    InvalidQuery,
    LimitReached,
    NotFound,
    QueryTimeout,
    StoreError,
    StoreUnavailable,
)

__all__ = [
    "Conflict",
    "InvalidQuery",
    "LimitReached",
    "NotFound",
    "QueryTimeout",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "open_store",
]


def open_store(
    url: str,
    *,
    sqlite_synchronous: str = "FULL",
    migrate: bool = True,
    retention_days: float = 30.0,
) -> Store:
    """Open the backend a database URL names (``sqlite:///...``, ``postgresql://...``).

    With ``migrate`` (the default) its schema is brought up to date first.
    ``retention_days``: the retention of organisations without their own (the settings').
    """
    if url.startswith("sqlite:"):
        from herald.store.sqlite import SQLiteStore

        store: Store = SQLiteStore(
            url, synchronous=sqlite_synchronous, retention_days=retention_days
        )
    elif url.startswith(("postgresql:", "postgres:")):
        from herald.store.postgres import PostgresStore

        store = PostgresStore(url, retention_days=retention_days)
    else:
        scheme = url.split(":", 1)[0]
        raise ValueError(
            f"unsupported database URL scheme {scheme!r} "
            "(use sqlite:///path.db or postgresql://user@host/db)"
        )
    if migrate:
        try:
            store.maintenance.migrate()
        except BaseException:
            store.close()
            raise
    return store
