"""Errors the store raises; nothing above the store sees a driver's exceptions.

Each backend maps its driver's errors onto these by exception class (and SQLite's error
code), never by message text; the API answers each class one way (``api.problems``).
"""

from __future__ import annotations

import enum


class StoreError(Exception):
    """Base of every store error."""


class NotFound(StoreError):
    """The thing asked for does not exist (or is not the caller's)."""


class Conflict(StoreError):
    """The write contradicts what is stored (a duplicate id, say)."""


class LimitReached(Conflict):
    """The write would take the organisation past one of its limits."""


class TryAgain(Conflict):
    """The write met a moment's conflict (a record being purged, a serialisation failure):
    the same request a little later will go through."""


class InvalidQuery(StoreError):
    """A query the store cannot run (a malformed cursor, say)."""


class QueryTimeout(StoreError):
    """A query ran past its time limit and was stopped (a tenant's unindexed scan, say)."""

    def __init__(self, time_limit: float) -> None:
        super().__init__(f"the query ran longer than {time_limit:g} s and was stopped")
        self.time_limit = time_limit


class Unavailability(enum.Enum):
    """Why the database cannot take a request, in words a client can act on."""

    READ_ONLY = "the database is read-only: writes are refused, reads still work"
    FULL = "the disk holding the database is full"
    BUSY = "the database is busy"
    DOWN = "the database cannot take requests now"


class StoreUnavailable(StoreError):
    """The database cannot take the request now (busy, read-only, disk full, unreachable)."""

    def __init__(self, message: str, why: Unavailability = Unavailability.DOWN) -> None:
        super().__init__(message)
        self.why = why
