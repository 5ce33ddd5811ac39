"""The event log and its metadata, behind one Store protocol with a backend per database."""

from __future__ import annotations

from herald.store.base import (
    DEFAULT_SORT,
    SORT_COLUMNS,
    EventFilter,
    EventPage,
    EventQuery,
    LogEntry,
    Organisation,
    SortKey,
    Store,
    Token,
)
from herald.store.errors import Conflict, InvalidQuery, NotFound, StoreError, StoreUnavailable

__all__ = [
    "DEFAULT_SORT",
    "SORT_COLUMNS",
    "Conflict",
    "EventFilter",
    "EventPage",
    "EventQuery",
    "InvalidQuery",
    "LogEntry",
    "NotFound",
    "Organisation",
    "SortKey",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "Token",
    "open_store",
]


def open_store(url: str, *, sqlite_synchronous: str = "FULL", migrate: bool = True) -> Store:
    """Open the backend a database URL names (``sqlite:///...``) and bring its schema up."""
    if url.startswith("sqlite:"):
        from herald.store.sqlite import SQLiteStore

        store: Store = SQLiteStore(url, synchronous=sqlite_synchronous)
    else:
        scheme = url.split(":", 1)[0]
        raise ValueError(f"unsupported database URL scheme {scheme!r} (use sqlite:///path.db)")
    if migrate:
        store.migrate()
    return store
