"""Device state: emnify's connectivity answer per endpoint, the fleet list, status counts."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from herald.api.deps import EventReader, ServicesDep
from herald.api.pagination import page_headers
from herald.api.problems import Problem, field_problem
from herald.devices import service
from herald.store import EventPage, EventQuery

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
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
    {
        "name": "per_page",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
    },
]


def _json(document: object, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(document), 200, headers=headers, media_type=JSON_TYPE)


@router.get("/endpoint", openapi_extra={"parameters": _LIST_PARAMETERS})
async def list_endpoints(
    request: Request, services: ServicesDep, principal: EventReader
) -> Response:
    """The organisation's endpoints with their state, filtered, sorted and paged."""
    try:
        query = service.list_query(request.query_params, principal.organisation_scope)
    except service.InvalidParameter as exc:
        raise field_problem(422, exc.field, exc.reason) from None
    rows, total = await services.run(services.store.list_device_states, query)
    headers = page_headers(
        request.url,
        EventQuery(page=query.page, per_page=query.per_page),
        EventPage(items=[], total=total, next_cursor=None),
        service.filter_echo(request.query_params),
        service.sort_echo(query),
    )
    return _json([service.summary(row) for row in rows], headers)


@router.get("/endpoint/status_counts")
async def endpoint_status_counts(services: ServicesDep, principal: EventReader) -> Response:
    """How many of the organisation's endpoints are in each status (a dashboard tile)."""
    counts = await services.run(services.store.device_status_counts, principal.organisation_scope)
    return _json(service.status_counts(counts))


@router.get("/endpoint/{endpoint_id}/connectivity")
async def endpoint_connectivity(
    endpoint_id: EndpointKey, services: ServicesDep, principal: EventReader
) -> Response:
    """The endpoint's connectivity as emnify answers it; 404 for an endpoint without state."""
    row = await services.run(
        services.store.get_device_state,
        principal.organisation_scope,
        service.endpoint_key(endpoint_id),
    )
    if row is None:
        raise Problem(404, "Not found", f"no connectivity state for endpoint {endpoint_id!r}")
    return _json(service.connectivity(row))
