"""1NCE's SIM management API, read from Herald's store: a 1NCE client pointed at Herald works.

Served under ``ONECE_PREFIX`` with 1NCE's own paths after it (its base URL
``https://api.1nce.com/management-api`` becomes ``http://<herald>/1nce/management-api``):

- ``GET /v1/sims/{iccid}/events?page=&pageSize=&sort=``: the SIM's events, 1NCE's
  ``EventCollection`` (``events``, ``totalEvents``, ``totalPages``) with its paging headers;
- ``GET /v1/sims/{iccid}/status``: the SIM's connectivity (``ATTACHED``, ``ONLINE``,
  ``OFFLINE``, ``BLOCKED``) with its location and PDP context, from the device state;
- ``GET /v1/sims/{iccid}/usage?start_dt=&end_dt=``: its usage per UTC day (``stats``), by the
  rule of ``devices/usage.py``, with the day's cost summed from its usage records when each
  of them carries one (1NCE's do), in one currency.

A SIM is found by its ICCID in the events of the caller's organisations (``sim.iccid``); its
newest event names the endpoint whose state and usage are the SIM's. Permissions as the
emnify routes: ``event:read``, a tenant token its own organisation only; 404 for an ICCID
no event of theirs carries.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from herald.api.deps import EventReader, ServicesDep
from herald.api.pagination import page_headers
from herald.api.problems import Problem, field_problem
from herald.auth import Principal
from herald.devices import service, usage, usage_reads
from herald.devices import state as device_state
from herald.devices.onece import (
    MAX_COST_RECORDS,
    Cost,
    as_text,
    day_costs,
    nested,
    sim_event,
    usage_entry,
)
from herald.devices.service import InvalidParameter
from herald.events.query_params import parse_sort, refuse_unknown
from herald.events.types import EventQuery
from herald.ingest.usage import MAX_ENDPOINT_ID
from herald.query.filter import EventFilter
from herald.services import Services
from herald.timefmt import now_ms

ONECE_PREFIX = "/1nce/management-api"
router = APIRouter(prefix=ONECE_PREFIX, tags=["1nce"])
JSON_TYPE = "application/json"
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 10  # 1NCE's default
MAX_PAGE = 10**9

Iccid = Annotated[
    str,
    Path(
        pattern=r"^[0-9]{1,22}$",
        description="The SIM's ICCID as its events carry it (sim.iccid), digits only",
    ),
]


# -- the answers, as 1NCE's API documents them -----------------------------------------------
class SimEvent(BaseModel):
    """One event of ``/v1/sims/{iccid}/events`` (1NCE's ``SIM_Event``): null where the
    event does not say (a network's fields on an event without one)."""

    timestamp: str = Field(description="When it happened: 2018-05-07T14:08:05.000+0000")
    event_type: str = Field(description="The type's description: Update location")
    iccid: str | None
    imei: str | None
    imsi: str | None
    country: str | None = Field(description="The network's country: Germany")
    operator: str | None = Field(description="The network's name: T-Mobile")
    mcc: str | None
    mnc: str | None
    alert: bool
    event_severity: str = Field(description="Info, Warn or Critical")


class EventCollection(BaseModel):
    """A page of a SIM's events (paging also in X-Total-Count, X-Total-Pages,
    X-Current-Page, X-Count-Per-Page)."""

    events: list[SimEvent]
    totalEvents: int  # 1NCE's field names
    totalPages: int


class SimStatus(BaseModel):
    """The SIM's connectivity: 1NCE's ``GET /v1/sims/{iccid}/status``."""

    status: Literal["ATTACHED", "ONLINE", "OFFLINE", "BLOCKED"]
    location: dict[str, Any] | None = Field(
        description="The network it was last seen on (iccid, imsi, operator with its "
        "country, country, last_updated, vlr, sgsn), or null"
    )
    pdp_context: dict[str, Any] | None = Field(description="The open data session, or null")
    services: list[str] = Field(description="GPRS and/or SMS")


class TrafficType(BaseModel):
    id: int = Field(description="5 data, 6 SMS")
    description: str
    unit: str


class Volume(BaseModel):
    """One day's data (MB, 6 decimals) or SMS (messages), as text as 1NCE writes it."""

    volume: str
    volume_rx: str = Field(description="Data: received by the SIM; SMS: mobile originated")
    volume_tx: str = Field(description="Data: sent by the SIM; SMS: mobile terminated")
    traffic_type: TrafficType
    cost: str | None = Field(
        description="The day's usage records' cost, summed: null unless each record of the "
        "day carries a cost, in one currency (1NCE's do; emnify's and sessions' do not)"
    )
    currency: dict[str, Any] | None = Field(description="The records' currency, as they say")


class DailyUsageEntry(BaseModel):
    date: str = Field(description="The UTC day: 2021-06-30T00:00:00.000Z")
    data: Volume
    sms: Volume


class DailyUsage(BaseModel):
    """``GET /v1/sims/{iccid}/usage``: each day of the range."""

    stats: list[DailyUsageEntry]


# -- finding the SIM ------------------------------------------------------------------------
def _json(document: object, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(document), 200, headers=headers, media_type=JSON_TYPE)


def _whole(request: Request, name: str, default: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= high:
        raise field_problem(400, name, f"must be a whole number from 1 to {high}")
    return int(raw)


async def _newest(services: Services, principal: Principal, iccid: str) -> dict[str, Any]:
    """The newest event of the caller's organisations carrying ``iccid``; 404 without one."""
    query = EventQuery(
        filter=EventFilter(principal.organisation_scope, iccids=(iccid,)),
        per_page=1,
        count=False,
        time_limit=services.settings.query_time_limit_seconds,
    )
    page = await services.query(principal, services.store.log.query, query)
    if not page.items:
        raise Problem(404, "Not found", f"no SIM with ICCID {iccid}")
    record: dict[str, Any] = orjson.loads(page.items[0])
    return record


# -- the routes -----------------------------------------------------------------------------
_EVENT_HEADERS = {
    name: {"description": text, "schema": {"type": "integer"}}
    for name, text in (
        ("X-Total-Count", "Events in all"),
        ("X-Total-Pages", "Pages in all"),
        ("X-Current-Page", "This page"),
        ("X-Count-Per-Page", "pageSize"),
    )
}


@router.get(
    "/v1/sims/{iccid}/events",
    responses={200: {"model": EventCollection, "headers": _EVENT_HEADERS}},
    openapi_extra={
        "parameters": [
            {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
            {
                "name": "pageSize",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
                "description": f"Events per page (default {DEFAULT_PAGE_SIZE})",
            },
            {
                "name": "sort",
                "in": "query",
                "schema": {"type": "string"},
                "description": "Comma list of fields, - for descending (default -timestamp), "
                "e.g. -timestamp,id",
            },
        ]
    },
)
async def sim_events(
    iccid: Iccid, request: Request, services: ServicesDep, principal: EventReader
) -> Response:
    """The SIM's events, newest first, a page at a time; 404 for an ICCID no event of the
    caller's organisations carries (as for its status and usage)."""
    refuse_unknown(request.query_params, frozenset({"page", "pageSize", "sort"}))
    page_number = _whole(request, "page", 1, MAX_PAGE)
    page_size = _whole(request, "pageSize", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    query = EventQuery(
        filter=EventFilter(principal.organisation_scope, iccids=(iccid,)),
        sort=parse_sort(request.query_params.get("sort")),
        page=page_number,
        per_page=page_size,
        time_limit=services.settings.query_time_limit_seconds,
    )
    page = await services.query(principal, services.store.log.query, query)
    total = page.total or 0
    if total == 0:
        raise Problem(404, "Not found", f"no SIM with ICCID {iccid}")
    sort_echo = ",".join(("-" if k.descending else "") + k.field for k in query.sort)
    headers = page_headers(request.url, query, page, "", sort_echo)
    document = {
        "events": [sim_event(orjson.loads(item)) for item in page.items],
        "totalEvents": total,
        "totalPages": max(1, -(-total // page_size)),
    }
    return _json(document, headers)


@router.get("/v1/sims/{iccid}/status", responses={200: {"model": SimStatus}})
async def sim_status(iccid: Iccid, services: ServicesDep, principal: EventReader) -> Response:
    """The SIM's connectivity: the state of the endpoint its newest event names (``OFFLINE``
    with no location for a SIM whose endpoint has no state yet)."""
    record = await _newest(services, principal, iccid)
    key = device_state.endpoint_key(record)
    organisation = nested(record, "organisation").get("id")
    row = None
    if key is not None and isinstance(organisation, int):
        row = await services.run(services.store.devices.get, (organisation,), key)
    if row is None:
        return _json({"status": "OFFLINE", "location": None, "pdp_context": None, "services": []})
    answer = service.connectivity(row)
    location = answer["location"]
    if location is not None:
        imsi = as_text(nested(record, "imsi").get("imsi"))
        location = {"iccid": iccid, "imsi": imsi, **location}
    return _json(
        {
            "status": service.status_ref(row.status)["description"],
            "location": location,
            "pdp_context": answer["pdp_context"],
            "services": answer["services"],
        }
    )


@router.get(
    "/v1/sims/{iccid}/usage",
    responses={200: {"model": DailyUsage}},
    openapi_extra={
        "parameters": [
            {
                "name": name,
                "in": "query",
                "schema": {"type": "string", "format": "date"},
                "description": text,
            }
            for name, text in (
                ("start_dt", "First day, YYYY-MM-DD (default: the first of end_dt's month)"),
                ("end_dt", "Last day, YYYY-MM-DD (default: today; at most 366 days in all)"),
            )
        ]
    },
)
async def sim_usage(
    iccid: Iccid, request: Request, services: ServicesDep, principal: EventReader
) -> Response:
    """The SIM's data and SMS usage per UTC day, every day of the range: the usage of the
    endpoint its newest event names, with each day's cost summed from its usage records
    where each carries one (else null; every record at ``/endpoint/{id}/usage/records``)."""
    params = dict(request.query_params)
    refuse_unknown(params, frozenset({"start_dt", "end_dt"}))
    renamed = {
        emnify: params[onece]
        for onece, emnify in (("start_dt", "start_date"), ("end_dt", "end_date"))
        if onece in params
    }
    try:
        first, last = usage.daily_range(renamed, now_ms())
    except InvalidParameter as exc:
        name = exc.field.replace("start_date", "start_dt").replace("end_date", "end_dt")
        reason = exc.reason.replace("start_date", "start_dt").replace("end_date", "end_dt")
        raise field_problem(422, name, reason) from None
    record = await _newest(services, principal, iccid)
    endpoint_id = nested(record, "endpoint").get("id")
    organisation = nested(record, "organisation").get("id")
    days: list[usage.DayUsage] = []
    costs: dict[tuple[int, int], Cost] = {}
    if (
        type(endpoint_id) is int
        and 0 <= endpoint_id <= MAX_ENDPOINT_ID
        and isinstance(organisation, int)
    ):
        records, sessions = await usage_reads.days(services, organisation, endpoint_id, first, last)
        days = usage.combine(first, last, records, sessions)
        rows = await services.run(
            services.store.usage.day_records,
            organisation,
            endpoint_id,
            first,
            last,
            MAX_COST_RECORDS,
        )
        costs = day_costs(rows, MAX_COST_RECORDS)
    else:  # a SIM without an endpoint id has no usage kept: every day empty
        days = usage.combine(first, last, [], [])
    return _json({"stats": [usage_entry(day, costs) for day in days]})
