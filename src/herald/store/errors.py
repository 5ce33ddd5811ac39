"""Errors the store raises; nothing above the store sees a driver's exceptions."""

from __future__ import annotations


class StoreError(Exception):
    """Base of every store error."""


class NotFound(StoreError):
    """The thing asked for does not exist (or is not the caller's)."""


class Conflict(StoreError):
    """The write contradicts what is stored (a duplicate id, say)."""


class InvalidQuery(StoreError):
    """A query the store cannot run (a malformed cursor, say)."""


class StoreUnavailable(StoreError):
    """The database cannot take the request now (busy, read-only, disk full)."""
