"""The permissions a tenant token can carry (a module of its own: the CLI's help names them
without importing the authentication code)."""

from __future__ import annotations

PERMISSIONS = frozenset(
    {
        "event:read",
        "event:create",
        "handler:read",
        "handler:manage",
        "rule:read",
        "rule:manage",
        "ingest:emnify",
        "ingest:1nce",
        "ingest:stacuity",
    }
)
"""Every permission a tenant token can carry; an internal token holds them all."""
