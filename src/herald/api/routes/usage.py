"""Usage: emnify's daily usage and usage statistics of an endpoint (``devices/usage.py``).

Permissions and scoping as the connectivity route: ``event:read``, the caller's
organisations only (an internal token: the lowest organisation that knows the endpoint);
404 for an endpoint that has no usage records and no events there.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import orjson
from fastapi import Path, Request
from fastapi.routing import APIRouter
from starlette.responses import Response

from herald.api.deps import EventReader, ServicesDep
from herald.api.problems import field_problem
from herald.devices import usage, usage_reads
from herald.devices.answers import UsageStats
from herald.retention import DAY_MS
from herald.timefmt import now_ms

router = APIRouter(tags=["devices"])
JSON_TYPE = "application/json"

EndpointId = Annotated[
    str,
    Path(min_length=1, max_length=256, description="The endpoint's id (usage is kept by id)"),
]
_DAILY_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": name,
        "in": "query",
        "schema": {"type": "string", "format": "date"},
        "description": text,
    }
    for name, text in (
        ("start_date", "First day, YYYY-MM-DD (default: the first of end_date's month)"),
        ("end_date", "Last day, YYYY-MM-DD (default: today; at most 366 days in all)"),
    )
]


def _json(document: object) -> Response:
    return Response(orjson.dumps(document), 200, media_type=JSON_TYPE)


@router.get("/endpoint/{endpoint_id}/stats/daily", openapi_extra={"parameters": _DAILY_PARAMETERS})
async def endpoint_daily_usage(
    endpoint_id: EndpointId, request: Request, services: ServicesDep, principal: EventReader
) -> Response:
    """The endpoint's usage per UTC day (every day of the range), as emnify answers it:
    data in MB (rx, tx, total), SMS in messages (tx: sent by the device, rx: received)."""
    first, last = usage.daily_range(request.query_params, now_ms())
    organisation_id = await usage_reads.organisation_of(
        services, principal.organisation_scope, endpoint_id
    )
    records, sessions = await usage_reads.days(
        services, organisation_id, int(endpoint_id), first, last
    )
    return _json([usage.daily_entry(day) for day in usage.combine(first, last, records, sessions)])


@router.get("/endpoint/{endpoint_id}/stats")
async def endpoint_usage_stats(
    endpoint_id: EndpointId, services: ServicesDep, principal: EventReader
) -> Response:
    """The endpoint's usage as emnify's ``/stats`` answers it: ``last_month`` and
    ``current_month`` (each only with traffic), ``last_hour`` per minute."""
    organisation_id = await usage_reads.organisation_of(
        services, principal.organisation_scope, endpoint_id
    )
    now = now_ms()
    this_month = usage.month_start(usage.today(now))
    previous = usage.month_start(date.fromordinal(this_month.toordinal() - 1))
    first, _ = usage.month_days(previous)
    last = usage.day_of(now)
    records, sessions = await usage_reads.days(
        services, organisation_id, int(endpoint_id), first, last
    )
    days = usage.combine(first, last, records, sessions)
    split = usage.month_days(this_month)[0] - first
    recent = await services.run(
        services.store.usage.since, organisation_id, int(endpoint_id), now - 60 * usage.MINUTE_MS
    )
    hour = usage.last_hour(now, recent, sessions, usage.record_days(records))
    last_month = usage.month_entry(previous, days[:split])
    current_month = usage.month_entry(this_month, days[split:])
    answer: UsageStats = {"last_hour": hour}  # with each month that had traffic, in order:
    if current_month is not None:
        answer = {"current_month": current_month, **answer}
    if last_month is not None:
        answer = {"last_month": last_month, **answer}
    return _json(answer)


MAX_USAGE_RECORDS = 1000
_RECORDS_PARAMETERS: list[dict[str, Any]] = [
    *_DAILY_PARAMETERS,
    {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_USAGE_RECORDS, "default": 100},
        "description": "At most this many records, the newest first",
    },
]


@router.get(
    "/endpoint/{endpoint_id}/usage/records",
    openapi_extra={
        "parameters": _RECORDS_PARAMETERS,
        "responses": {
            "200": {
                "description": "The usage records as the provider sent them",
                "content": {
                    JSON_TYPE: {
                        "schema": {
                            "type": "array",
                            "items": {"type": "object", "additionalProperties": True},
                        },
                        "example": [
                            {
                                "id": "9001",
                                "traffic_type": {"id": 5, "description": "Data"},
                                "volume": {"rx": "0.5", "tx": "0.25", "total": "0.75"},
                                "cost": "0.0075",
                                "currency": {"id": 1, "code": "EUR", "symbol": "€"},
                                "tariff": {"id": 442, "name": "1NCE Lifetime Flex"},
                                "endpoint": {"id": 7},
                            }
                        ],
                    }
                },
            }
        },
    },
)
async def endpoint_usage_records(
    endpoint_id: EndpointId, request: Request, services: ServicesDep, principal: EventReader
) -> Response:
    """The endpoint's usage records (emnify's and 1NCE's data streamers), byte for byte as
    the provider sent them: cost, currency, tariff and every other field it wrote, which the
    daily sums leave out. Those that ended on the days ``start_date``..``end_date`` (as
    ``/stats/daily`` reads them), the newest first, at most ``limit``."""
    params = request.query_params
    unknown = sorted(set(params) - {"start_date", "end_date", "limit"})
    if unknown:
        raise field_problem(
            422, unknown[0], "unknown parameter (known: end_date, limit, start_date)"
        )
    raw_limit = params.get("limit", "100")
    digits = raw_limit.isascii() and raw_limit.isdigit() and len(raw_limit) <= 4
    if not digits or not 1 <= int(raw_limit) <= MAX_USAGE_RECORDS:
        raise field_problem(422, "limit", f"must be a whole number from 1 to {MAX_USAGE_RECORDS}")
    dates = {name: params[name] for name in ("start_date", "end_date") if name in params}
    first, last = usage.daily_range(dates, now_ms())
    organisation_id = await usage_reads.organisation_of(
        services, principal.organisation_scope, endpoint_id
    )
    records = await services.run(
        services.store.usage.records,
        organisation_id,
        int(endpoint_id),
        first * DAY_MS,
        (last + 1) * DAY_MS,
        int(raw_limit),
    )
    return Response(b"[" + b",".join(records) + b"]", 200, media_type=JSON_TYPE)
