"""The retention rule, in one place.

An event is kept for its organisation's retention after its own timestamp. An event whose
timestamp is already outside the window ``[now - retention, now + max future skew]`` is
refused at ingest, so nothing acknowledged is ever purged before its time, and no write
reaches a day the store does not hold (PostgreSQL partitions exist only for the window).
"""

from __future__ import annotations

DAY_MS = 86_400_000
MAX_RETENTION_DAYS = 366
"""An organisation's longest retention (on PostgreSQL, each day of it is one partition)."""


def retention_days(own: int | None, default_days: float) -> float:
    """An organisation's retention in days: its own, else the server's default."""
    return float(own) if own is not None else default_days


def window_start_ms(now_ms: int, days: float) -> int:
    """The oldest timestamp kept (and accepted) at ``now_ms`` with ``days`` of retention."""
    return now_ms - int(days * DAY_MS)


def too_old(days: float) -> str:
    """The reason given for an event older than the window."""
    return f"older than the retention window of {days:g} day{'' if days == 1 else 's'}"
