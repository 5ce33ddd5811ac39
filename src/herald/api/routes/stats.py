"""Analytics: ``GET /event/stats``, event counts over time and by group, top endpoints.

The list's filters select the events (``q``, ``type``, ``severity``..., ``from``/``until``;
the last 24 hours by default). ``bucket`` (minute, hour, day) splits the range in time;
``group`` splits it by type, severity, source, endpoint, country or operator; ``order``
ranks groups by event count or by data volume (the MB of Delete PDP Context events);
``limit`` keeps the top N groups.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from herald.api.deps import EventReader, ServicesDep
from herald.api.problems import field_problem
from herald.catalog import SEVERITIES, SOURCES, Catalog
from herald.events.query_params import (
    FILTER_FIELDS,
    OrganisationNamed,
    organisation_names,
    parse_filters,
    refuse_unknown,
)
from herald.events.types import StatsQuery, StatsRow
from herald.query.fields import STATS_GROUPS
from herald.timefmt import format_ms, now_ms

router = APIRouter(tags=["analytics"])

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
        raise field_problem(400, name, f"must be one of {', '.join(choices)}")
    return value


def _limit(params: Mapping[str, str]) -> int:
    raw = params.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 1000:  # "²".isdigit()
        raise field_problem(400, "limit", "must be a whole number between 1 and 1000")
    return int(raw)


def _label(group: str | None, key: int | str | None, row: StatsRow, catalog: Catalog) -> Any:
    if group == "type" and isinstance(key, int):
        return catalog.describe(key)
    if group == "severity" and isinstance(key, int):
        return SEVERITIES.get(key)
    if group == "source" and isinstance(key, int):
        return SOURCES.get(key)
    return row.label if group == "endpoint" else key


def build_stats_query(
    params: Mapping[str, str],
    scope: tuple[int, ...] | None,
    catalog: Catalog,
    organisation_named: OrganisationNamed | None = None,
) -> StatsQuery:
    """The StatsQuery the parameters ask for; 400/422 naming the bad parameter."""
    refuse_unknown(params, _KNOWN)
    filter_params = {k: v for k, v in params.items() if k not in _OWN}
    flt, _ = parse_filters(
        filter_params, scope=scope, catalog=catalog, organisation_named=organisation_named
    )
    until = flt.until_ms if flt.until_ms is not None else now_ms()
    start = flt.from_ms if flt.from_ms is not None else until - DEFAULT_RANGE_MS
    if start > until:
        raise field_problem(422, "from", "is after until")
    flt = flt.replace(from_ms=start, until_ms=until)
    bucket = _choice(params, "bucket", BUCKETS)
    group = _choice(params, "group", STATS_GROUPS)
    order = _choice(params, "order", ORDERS) or "count"
    bucket_ms = BUCKETS[bucket] if bucket else None
    if bucket_ms is not None and (until - start) // bucket_ms + 1 > MAX_BUCKETS:
        raise field_problem(
            422, "bucket", f"more than {MAX_BUCKETS} buckets: choose a longer bucket or range"
        )
    if "limit" in params and bucket_ms is not None:
        raise field_problem(400, "limit", "ranks groups of the whole range: not with bucket")
    limit = _limit(params)  # checked even where it does not apply
    if bucket_ms is not None or group is None:
        limit = MAX_ROWS
    return StatsQuery(filter=flt, bucket_ms=bucket_ms, group=group, order=order, limit=limit)


@router.get(
    "/event/stats",
    responses={
        200: {
            "content": {
                "application/json": {
                    "example": {
                        "from": "2026-11-22T14:00:00.000Z",
                        "until": "2026-11-23T14:00:00.000Z",
                        "bucket": "hour",
                        "group": "severity",
                        "order": "count",
                        "total": 1840,
                        "volume_mb": 512.25,
                        "rows": [
                            {
                                "time": "2026-11-23T13:00:00.000Z",
                                "key": 1,
                                "label": "Warn",
                                "count": 12,
                                "volume_mb": 0.0,
                            }
                        ],
                    }
                }
            }
        }
    },
)
async def event_stats(request: Request, services: ServicesDep, principal: EventReader) -> Response:
    """Event counts (and data volume) over a time range, by time bucket and/or group.

    ``bucket``: minute, hour or day. ``group``: type, severity, source, endpoint, country
    or operator. ``order``: count or volume, ``limit``: top N groups (default 10). Top
    endpoints by data volume: ``group=endpoint&order=volume``.
    """
    query = build_stats_query(
        request.query_params,
        principal.organisation_scope,
        services.catalog,
        await organisation_names(services, request.query_params),
    )
    limit = services.settings.query_time_limit_seconds
    query = dataclasses.replace(query, time_limit=limit)
    rows = await services.query(principal, services.store.stats, query)
    totals = await services.query(
        principal, services.store.stats, StatsQuery(filter=query.filter, limit=1, time_limit=limit)
    )
    body: dict[str, Any] = {
        "from": format_ms(query.filter.from_ms or 0),
        "until": format_ms(query.filter.until_ms or 0),
        "bucket": _name_of_bucket(query.bucket_ms),
        "group": query.group,
        "order": query.order,
        "total": totals[0].count if totals else 0,
        "volume_mb": round(totals[0].volume_mb, 6) if totals else 0.0,
        "rows": [_row(query, row, services.catalog) for row in rows],
    }
    return Response(orjson.dumps(body), 200, media_type="application/json")


def _name_of_bucket(bucket_ms: int | None) -> str | None:
    return next((name for name, ms in BUCKETS.items() if ms == bucket_ms), None)


def _row(query: StatsQuery, row: StatsRow, catalog: Catalog) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if row.bucket_ms is not None:
        out["time"] = format_ms(row.bucket_ms)
    if query.group is not None:
        out["key"] = row.key
        out["label"] = _label(query.group, row.key, row, catalog)
    out["count"] = row.count
    out["volume_mb"] = round(row.volume_mb, 6)
    return out
