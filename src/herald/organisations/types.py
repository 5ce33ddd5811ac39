"""An organisation (a tenant) and its application tokens, as stored."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Organisation:
    id: int
    name: str
    created_ms: int
    retention_days: int | None = None  # None: the server's default (HERALD_RETENTION_DAYS)
    device_events: bool = False  # its endpoints' status changes are written as events
    events_per_second: float | None = None  # its event budget; None: the server's default
    event_burst: int | None = None
    bytes_per_day: int | None = None


@dataclass(frozen=True, slots=True)
class Token:
    """An application token as stored: never the secret itself, only its hash."""

    id: int
    organisation_id: int | None
    name: str
    prefix: str
    permissions: tuple[str, ...]
    internal: bool
    created_ms: int
    revoked_ms: int | None
