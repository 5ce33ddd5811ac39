"""Device state: emnify's connectivity answer per endpoint, the fleet list, status counts.

Each answer says what the written states include (``Herald-State-Position``,
``Herald-State-As-Of``): headers, so that emnify's clients read the body they know.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from herald.api.deps import EventReader, ServicesDep, require
from herald.api.pagination import page_headers
from herald.api.problems import Problem
from herald.auth import Principal
from herald.devices import changes, service
from herald.events.types import EventPage, EventQuery
from herald.organisations import service as organisations_service
from herald.organisations.types import Organisation
from herald.store.device_records import Freshness
from herald.timefmt import format_ms

router = APIRouter(tags=["devices"])
JSON_TYPE = "application/json"

EndpointKey = Annotated[
    str,
    Path(
        min_length=1,
        max_length=256,
        description="The endpoint's id, or the id a provider gives it that is not a number "
        "(a Stacuity endpointId), which Herald keeps as the endpoint's name",
    ),
]
_LIST_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "q",
        "in": "query",
        "schema": {"type": "string", "maxLength": 4096},
        "description": "The filters below as one text, like the event list's q: "
        "status:OFFLINE|BLOCKED,country:Germany,quiet:6h (each field at most once)",
    },
    {
        "name": "status",
        "in": "query",
        "schema": {"type": "string"},
        "description": "Statuses by id or name, joined with |: ONLINE|ATTACHED or 1|0",
    },
    {
        "name": "country",
        "in": "query",
        "schema": {"type": "string"},
        "description": "Germany|France",
    },
    {"name": "operator", "in": "query", "schema": {"type": "string"}, "description": "Vodafone"},
    {
        "name": "endpoint",
        "in": "query",
        "schema": {"type": "string"},
        "description": "Endpoint ids or names, joined with |: 7|8|tracker-9",
    },
    {
        "name": "name",
        "in": "query",
        "schema": {"type": "string"},
        "description": "Substrings of the endpoint's name (ASCII case ignored), joined with |",
    },
    {
        "name": "quiet",
        "in": "query",
        "schema": {"type": "string", "pattern": "^[0-9]{1,7}[mhd]$"},
        "description": "Endpoints that went quiet: no event for this long (30m, 6h, 2d)",
    },
    {"name": "last_seen_after", "in": "query", "schema": {"type": "string", "format": "date-time"}},
    {
        "name": "last_seen_before",
        "in": "query",
        "schema": {"type": "string", "format": "date-time"},
    },
    {
        "name": "sort",
        "in": "query",
        "schema": {"type": "string"},
        "description": "Comma list of last_seen, id, name, status, country, operator, updated; "
        "- for descending (default -last_seen)",
    },
    {
        "name": "organisation",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1},
        "description": "One of the token's organisations only (internal tokens: any one)",
    },
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
    {
        "name": "per_page",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
    },
]


_FRESHNESS_HEADERS: dict[str, Any] = {
    "Herald-State-Position": {
        "description": "The log position the device states include: every event up to it",
        "schema": {"type": "integer"},
    },
    "Herald-State-As-Of": {
        "description": "Every event acknowledged before this time is in the answer (absent "
        "until the process keeping the states knows one: a moment after it takes them "
        "over). The states are written at least every quarter of a second while a process "
        "keeps them: an event acknowledged a second before a read is in it (on PostgreSQL, "
        "a second after any write transaction open at the time has ended)",
        "schema": {"type": "string", "format": "date-time"},
    },
}
_FRESH: dict[int | str, dict[str, Any]] = {200: {"headers": _FRESHNESS_HEADERS}}


def _freshness(freshness: Freshness) -> dict[str, str]:
    headers = {"Herald-State-Position": str(freshness.position)}
    if freshness.as_of_ms:
        headers["Herald-State-As-Of"] = format_ms(freshness.as_of_ms)
    return headers


def _json(document: object, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(document), 200, headers=headers, media_type=JSON_TYPE)


_ORGANISATION_HELP = "One of the token's organisations only (internal tokens: any one)"


@router.get("/endpoint", openapi_extra={"parameters": _LIST_PARAMETERS}, responses=_FRESH)
async def list_endpoints(
    request: Request, services: ServicesDep, principal: EventReader
) -> Response:
    """The organisation's endpoints with their state, filtered, sorted and paged."""
    params = dict(request.query_params)
    scope = service.scope_for(principal, params.pop("organisation", None))
    query = service.list_query(params, scope)
    query = dataclasses.replace(query, time_limit=services.settings.query_time_limit_seconds)
    devices = services.store.devices
    (rows, total), freshness = await services.query(
        principal, lambda: (devices.page(query), devices.freshness())
    )
    headers = page_headers(
        request.url,
        EventQuery(page=query.page, per_page=query.per_page),
        EventPage(items=[], total=total, next_cursor=None),
        service.filter_echo(request.query_params),
        service.sort_echo(query),
    )
    return _json([service.summary(row) for row in rows], {**headers, **_freshness(freshness)})


@router.get("/endpoint/status_counts", responses=_FRESH)
async def endpoint_status_counts(
    services: ServicesDep,
    principal: EventReader,
    organisation: Annotated[
        str | None, Query(max_length=20, description=_ORGANISATION_HELP)
    ] = None,
) -> Response:
    """How many of the organisation's endpoints are in each status (a dashboard tile)."""
    scope = service.scope_for(principal, organisation)
    devices = services.store.devices
    counts, freshness = await services.run(
        lambda: (devices.status_counts(scope), devices.freshness())
    )
    return _json(service.status_counts(counts), _freshness(freshness))


class OrganisationOut(BaseModel):
    """An organisation the caller may read."""

    id: int
    name: str


@router.get("/organisation", responses={200: {"model": list[OrganisationOut]}})
async def list_organisations(services: ServicesDep, principal: EventReader) -> Response:
    """The organisations the token may read, by id: its own, or every one for an internal
    token (the console's organisation switcher)."""
    organisations = await organisations_service.visible(services, principal)
    return _json([{"id": o.id, "name": o.name} for o in organisations])


@router.get("/endpoint/{endpoint_id}/connectivity", responses=_FRESH)
async def endpoint_connectivity(
    endpoint_id: EndpointKey, services: ServicesDep, principal: EventReader
) -> Response:
    """The endpoint's connectivity as emnify answers it; 404 for an endpoint without state."""
    row, freshness = await services.run(
        services.store.devices.lookup,
        principal.organisation_scope,
        service.endpoint_key(endpoint_id),
    )
    if row is None:
        raise Problem(404, "Not found", f"no connectivity state for endpoint {endpoint_id!r}")
    return _json(service.connectivity(row), _freshness(freshness))


OrganisationId = Annotated[int, Path(ge=0, le=2**63 - 1)]
Manager = Annotated[Principal, Depends(require("handler:manage"))]


class DeviceEventsIn(BaseModel):
    """Whether the organisation's endpoints' status changes are written as events."""

    model_config = ConfigDict(extra="forbid", strict=True)

    enabled: bool = Field(
        description="true: each status change is an event of type 2100 + the new status "
        "(2100 attached, 2101 online, 2102 offline, 2103 blocked)"
    )


class DeviceEventsOut(BaseModel):
    organisation_id: int
    enabled: bool
    types: list[int] = Field(description="The event types a status change is written as")


def _device_events(organisation: Organisation) -> DeviceEventsOut:
    return DeviceEventsOut(
        organisation_id=organisation.id,
        enabled=organisation.device_events,
        types=sorted(changes.TYPES),
    )


@router.get(
    "/organisation/{organisation_id}/device_events",
    responses={200: {"model": DeviceEventsOut}},
)
async def get_device_events(
    organisation_id: OrganisationId, services: ServicesDep, principal: EventReader
) -> DeviceEventsOut:
    """Whether the organisation's endpoints' status changes are written as events."""
    return _device_events(await organisations_service.get(services, principal, organisation_id))


@router.put(
    "/organisation/{organisation_id}/device_events",
    responses={200: {"model": DeviceEventsOut}},
)
async def set_device_events(
    organisation_id: OrganisationId,
    body: DeviceEventsIn,
    services: ServicesDep,
    principal: Manager,
) -> DeviceEventsOut:
    """Opt the organisation in (or out): its endpoints' status changes from now on are
    written to its log as events handlers can stream ("endpoint went offline")."""
    organisation = await organisations_service.set_device_events(
        services, principal, organisation_id, body.enabled
    )
    return _device_events(organisation)
