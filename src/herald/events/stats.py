"""Event counts over a time range, by time bucket and/or group: the parameters of
``/event/stats`` as a StatsQuery, and the query run in the caller's share of the store.

The list's filters select the events (``q``, ``type``, ``severity``..., ``from``/``until``;
the last 24 hours by default). ``bucket`` (minute, hour, day) splits the range in time;
``group`` splits it by type, severity, source, endpoint, country or operator; ``order``
ranks groups by event count or by data volume (the MB of Delete PDP Context events);
``limit`` keeps the top N groups.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from herald.auth import Principal
from herald.catalog import Catalog
from herald.errors import Invalid, Malformed
from herald.events.query_params import (
    FILTER_FIELDS,
    OrganisationNamed,
    organisation_names,
    parse_filters,
    refuse_unknown,
)
from herald.events.types import StatsQuery, StatsRow
from herald.query.fields import STATS_GROUPS
from herald.services import Services
from herald.timefmt import now_ms

BUCKETS = {"minute": 60_000, "hour": 3_600_000, "day": 86_400_000}
ORDERS = ("count", "volume")
DEFAULT_RANGE_MS = 86_400_000
MAX_BUCKETS = 10_000
MAX_ROWS = 10_000
DEFAULT_LIMIT = 10
_OWN = {"bucket", "group", "order", "limit"}
_KNOWN = frozenset({*_OWN, "q", *FILTER_FIELDS})


def _choice(params: Mapping[str, str], name: str, choices: Any) -> str | None:
    value = params.get(name)
    if value is not None and value not in choices:  # empty too: it is no choice
        raise Malformed.at(name, f"must be one of {', '.join(choices)}")
    return value


def _limit(params: Mapping[str, str]) -> int:
    raw = params.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 1000:  # "²".isdigit()
        raise Malformed.at("limit", "must be a whole number between 1 and 1000")
    return int(raw)


def build_stats_query(
    params: Mapping[str, str],
    scope: tuple[int, ...] | None,
    catalog: Catalog,
    organisation_named: OrganisationNamed | None = None,
) -> StatsQuery:
    """The StatsQuery the parameters ask for; ``Malformed`` or ``Invalid`` naming the bad
    parameter."""
    refuse_unknown(params, _KNOWN)
    filter_params = {k: v for k, v in params.items() if k not in _OWN}
    flt, _ = parse_filters(
        filter_params, scope=scope, catalog=catalog, organisation_named=organisation_named
    )
    until = flt.until_ms if flt.until_ms is not None else now_ms()
    start = flt.from_ms if flt.from_ms is not None else until - DEFAULT_RANGE_MS
    if start > until:
        raise Invalid.at("from", "is after until")
    flt = flt.replace(from_ms=start, until_ms=until)
    bucket = _choice(params, "bucket", BUCKETS)
    group = _choice(params, "group", STATS_GROUPS)
    order = _choice(params, "order", ORDERS) or "count"
    bucket_ms = BUCKETS[bucket] if bucket else None
    if bucket_ms is not None and (until - start) // bucket_ms + 1 > MAX_BUCKETS:
        raise Invalid.at(
            "bucket", f"more than {MAX_BUCKETS} buckets: choose a longer bucket or range"
        )
    if "limit" in params and bucket_ms is not None:
        raise Malformed.at("limit", "ranks groups of the whole range: not with bucket")
    limit = _limit(params)  # checked even where it does not apply
    if bucket_ms is not None or group is None:
        limit = MAX_ROWS
    return StatsQuery(filter=flt, bucket_ms=bucket_ms, group=group, order=order, limit=limit)


@dataclass(frozen=True, slots=True)
class Counted:
    """What a stats query found: its rows, and the whole range's events and volume."""

    query: StatsQuery
    rows: list[StatsRow]
    total: int
    volume_mb: float


async def count(services: Services, principal: Principal, params: Mapping[str, str]) -> Counted:
    """The counts ``params`` ask for, within the query time limit and the caller's share of
    the store (``Services.query``)."""
    query = build_stats_query(
        params,
        principal.organisation_scope,
        services.catalog,
        await organisation_names(services, params),
    )
    limit = services.settings.query_time_limit_seconds
    query = dataclasses.replace(query, time_limit=limit)
    rows = await services.query(principal, services.store.log.stats, query)
    totals = await services.query(
        principal,
        services.store.log.stats,
        StatsQuery(filter=query.filter, limit=1, time_limit=limit),
    )
    if not totals:
        return Counted(query, rows, 0, 0.0)
    return Counted(query, rows, totals[0].count, round(totals[0].volume_mb, 6))
