"""The reads behind the usage routes: whose usage of an endpoint the caller may read, and
a range of days' summed usage records with the sessions that count beside them."""

from __future__ import annotations

from herald.devices import usage
from herald.errors import NotFound
from herald.ingest.usage import MAX_ENDPOINT_ID
from herald.retention import DAY_MS
from herald.services import Services
from herald.store.usage_records import DailyUsage, Traffic


async def organisation_of(services: Services, scope: tuple[int, ...] | None, raw: str) -> int:
    """The organisation whose usage of endpoint ``raw`` the caller reads, and its id."""
    if raw.isascii() and raw.isdigit() and int(raw) <= MAX_ENDPOINT_ID:
        found = await services.run(services.store.usage.organisation, scope, int(raw))
        if found is not None:
            return found
    raise NotFound(f"no usage for endpoint {raw!r}")


async def days(
    services: Services, organisation_id: int, endpoint_id: int, first: int, last: int
) -> tuple[list[DailyUsage], list[Traffic]]:
    """The days' summed usage records and the sessions closed on the days without data
    records (the only ones that count)."""
    store = services.store
    records = await services.run(store.usage.days, organisation_id, endpoint_id, first, last)
    bodies = await services.run(
        store.usage.sessions, organisation_id, endpoint_id, first * DAY_MS, (last + 1) * DAY_MS
    )
    by_records = usage.record_days(records)  # their sessions would not count: not read
    sessions = [
        traffic
        for at, body in bodies
        if usage.day_of(at) not in by_records
        and (traffic := usage.session_traffic(at, body)) is not None
    ]
    return records, sessions
