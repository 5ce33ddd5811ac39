"""Analytics: ``GET /event/stats``, event counts over time and by group, top endpoints;
over ``events/stats.py``, which says what the parameters ask for."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from herald.api import schemas
from herald.api.deps import EventReader, ServicesDep
from herald.api.schemas import answer
from herald.catalog import SEVERITIES, SOURCES, Catalog
from herald.events.stats import BUCKETS, count
from herald.events.types import StatsQuery, StatsRow
from herald.timefmt import format_ms

router = APIRouter(tags=["analytics"])


def _label(group: str | None, key: int | str | None, row: StatsRow, catalog: Catalog) -> Any:
    if group == "type" and isinstance(key, int):
        return catalog.describe(key)
    if group == "severity" and isinstance(key, int):
        return SEVERITIES.get(key)
    if group == "source" and isinstance(key, int):
        return SOURCES.get(key)
    return row.label if group == "endpoint" else key


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
    counted = await count(services, principal, request.query_params)
    query = counted.query
    stats = schemas.Stats(
        from_=format_ms(query.filter.from_ms or 0),
        until=format_ms(query.filter.until_ms or 0),
        bucket=_name_of_bucket(query.bucket_ms),
        group=query.group,
        order=query.order,
        total=counted.total,
        volume_mb=counted.volume_mb,
        rows=[_row(query, row, services.catalog) for row in counted.rows],
    )
    return Response(orjson.dumps(answer(stats)), 200, media_type="application/json")


def _name_of_bucket(bucket_ms: int | None) -> str | None:
    return next((name for name, ms in BUCKETS.items() if ms == bucket_ms), None)


def _row(query: StatsQuery, row: StatsRow, catalog: Catalog) -> schemas.StatsRow:
    """A row with ``time`` when bucketed and ``key`` and ``label`` when grouped (a field
    left unset is left out of the answer)."""
    out = schemas.StatsRow(count=row.count, volume_mb=round(row.volume_mb, 6))
    if row.bucket_ms is not None:
        out.time = format_ms(row.bucket_ms)
    if query.group is not None:
        out.key = row.key
        out.label = _label(query.group, row.key, row, catalog)
    return out
