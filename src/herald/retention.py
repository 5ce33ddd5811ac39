"""The retention rule, in one place, and the purge that enforces it.

An event is kept for its organisation's retention after its own timestamp. An event whose
timestamp is already outside the window ``[now - retention, now + max future skew]`` is
refused at ingest, so nothing acknowledged is ever purged before its time, and no write
reaches a day the store does not hold (PostgreSQL partitions exist only for the window).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from herald import timefmt

if TYPE_CHECKING:  # services imports config, which imports this module's limits
    from herald.services import Services

log = logging.getLogger("herald")

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


async def purge(services: Services) -> None:
    """Delete what is past its window: the events (by their organisation's retention),
    the ingest quarantine (by the default retention, from when a record came) and the
    usage records (by their organisation's retention)."""
    store, settings = services.store, services.settings
    deleted = await services.run(store.maintenance.purge, timefmt.now_ms())
    if deleted:
        log.info("retention: purged %d events older than their retention window", deleted)
    cutoff = window_start_ms(timefmt.now_ms(), settings.retention_days)
    await services.run(store.quarantine.purge, cutoff)
    await services.run(store.usage.purge, timefmt.now_ms())
