"""Events: generate, list (with emnify's paging, sorting and ``q`` filter) and read; over
``events/service.py``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from herald.api.deps import EventReader, EventWriter, ServicesDep
from herald.api.pagination import page_headers
from herald.events import service
from herald.events.query_params import FILTER_FIELDS

router = APIRouter(tags=["events"])
JSON_TYPE = "application/json"


def _json_array(items: list[bytes]) -> bytes:
    """A JSON array of already serialised records."""
    return b"[" + b",".join(items) + b"]"


_LIST_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "q",
        "in": "query",
        "schema": {"type": "string"},
        "description": "Filter: comma list of field:value, several values joined with |, "
        "e.g. type:3|5,severity:1,from:2026-11-01T00:00:00Z. Fields (also plain parameters): "
        + ", ".join(FILTER_FIELDS)
        + ". organisation takes an id or a name (an unknown name selects nothing); network is "
        "the operator's name (detail.name); rat the PDP context's RAT type (3GPP number, or "
        "2G, 3G, 4G/LTE, NB-IoT, LTE-M, 5G/NR).",
    },
    {
        "name": "sort",
        "in": "query",
        "schema": {"type": "string"},
        "description": "Comma list of fields, - for descending (default -timestamp)",
    },
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
    {
        "name": "per_page",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
    },
    {
        "name": "cursor",
        "in": "query",
        "schema": {"type": "string"},
        "description": "Keyset cursor from X-Next-Cursor: deep paging without counting",
    },
]


@router.post(
    "/event",
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                JSON_TYPE: {
                    "schema": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/EventIn"},
                            {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/EventIn"},
                                "maxItems": 1000,
                            },
                        ]
                    }
                }
            },
        }
    },
)
async def generate_events(
    request: Request, services: ServicesDep, principal: EventWriter
) -> Response:
    """Generate one event (an object) or a batch (an array, up to 1000): all stored or none."""
    stored, is_batch = await service.submit(services, principal, await request.body())
    return Response(_json_array(stored) if is_batch else stored[0], 201, media_type=JSON_TYPE)


async def _list(
    request: Request, services: ServicesDep, principal: EventReader, **fixed: Any
) -> Response:
    listed = await service.list_events(services, principal, request.query_params, **fixed)
    headers = page_headers(
        request.url, listed.query, listed.page, listed.filter_echo, listed.sort_echo
    )
    return Response(_json_array(listed.page.items), 200, headers=headers, media_type=JSON_TYPE)


_list_doc: dict[str, Any] = {"openapi_extra": {"parameters": _LIST_PARAMETERS}}


@router.get("/event", **_list_doc)
async def list_events(request: Request, services: ServicesDep, principal: EventReader) -> Response:
    """The organisation's events, newest first; filter, sort and page as emnify's API does."""
    return await _list(request, services, principal)


@router.get("/event/{event_id}")
async def get_event(
    event_id: Annotated[int, Path(ge=0, le=2**63 - 1)],  # beyond 64 bits SQLite overflows: 500
    services: ServicesDep,
    principal: EventReader,
) -> Response:
    """One event; 404 if it does not exist or belongs to another organisation."""
    body = await service.get_event(services, principal, event_id)
    return Response(body, 200, media_type=JSON_TYPE)


EntityId = Annotated[int, Path(ge=0, le=2**63 - 1)]


EndpointKey = Annotated[
    str,
    Path(
        min_length=1,
        max_length=256,
        description="The endpoint's id, or the id a provider gives it that is not a number "
        "(a Stacuity endpointId), which Herald keeps as the endpoint's name",
    ),
]


@router.get("/endpoint/{endpoint_id}/event", **_list_doc)
async def endpoint_events(
    request: Request, services: ServicesDep, principal: EventReader, endpoint_id: EndpointKey
) -> Response:
    """One endpoint's events (``200 []`` for an endpoint without any)."""
    if endpoint_id.isdigit() and int(endpoint_id) < 2**63:
        return await _list(request, services, principal, endpoint_ids=(int(endpoint_id),))
    return await _list(request, services, principal, endpoint_names=(endpoint_id,))


@router.get("/sim/{sim_id}/event", **_list_doc)
async def sim_events(
    request: Request, services: ServicesDep, principal: EventReader, sim_id: EntityId
) -> Response:
    """One SIM's events."""
    return await _list(request, services, principal, sim_ids=(sim_id,))


@router.get("/user/{user_id}/event", **_list_doc)
async def user_events(
    request: Request, services: ServicesDep, principal: EventReader, user_id: EntityId
) -> Response:
    """One user's events."""
    return await _list(request, services, principal, user_ids=(user_id,))


@router.get("/organisation/{organisation_id}/event", **_list_doc)
async def organisation_events(
    request: Request,
    services: ServicesDep,
    principal: EventReader,
    organisation_id: EntityId,
) -> Response:
    """One organisation's events: a tenant token sees only its own."""
    scope = principal.organisation_scope
    visible = (organisation_id,) if scope is None or organisation_id in scope else ()
    return await _list(request, services, principal, organisation_ids=visible)
