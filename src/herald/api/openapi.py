"""The OpenAPI document, exact: every operation's request and answer schemas, its errors as
``application/problem+json``, and links from a created handler to its operations (so a
stateful client, or fuzzer, can follow them).

The routes stay plain; this module says, in one table, what each one answers. A test fails
if a route is missing from the table (the document still serves it, with the answer the
route declares) or a ``$ref`` does not resolve.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from herald.api import schemas
from herald.devices import answers
from herald.events import codec
from herald.events.stats import BUCKETS, ORDERS
from herald.query.fields import STATS_GROUPS

DOCS_URL = "/api/docs"
REF = "#/components/schemas/{model}"
PROBLEM_JSON = "application/problem+json"
ERROR_TEXT = {
    400: "Bad parameter (the problem names it)",
    401: "Missing, unknown, expired or revoked credentials",
    403: "The token lacks the permission, or acts for another organisation",
    404: "No such resource in the caller's organisations",
    409: "A limit of the organisation is reached (the problem says which)",
    413: "Body over the size limit",
    422: "Invalid body or filter, or a query past its time limit (the problem names the field)",
    429: "Rate limit, the organisation's event budget or its queries at once exceeded "
    "(see Retry-After)",
    503: "Storage unavailable (see Retry-After)",
}
AUTH = (401, 403, 429, 503)
READ = (400, *AUTH)
ITEM = (400, 404, *AUTH)
WRITE = (400, 413, 422, *AUTH)
ITEM_WRITE = (404, *WRITE)
LIST = (400, 422, *AUTH)


def _ref(model: type | str) -> dict[str, Any]:
    name = model if isinstance(model, str) else model.__name__
    return {"$ref": REF.format(model=name)}


def _array(model: type | str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(model)}


@dataclass(frozen=True)
class Answer:
    """An operation's success (status, media type, schema) and its error statuses."""

    status: int
    schema: dict[str, Any] | None
    errors: tuple[int, ...]
    media_type: str = "application/json"
    description: str = "OK"


FROM_ROUTE: dict[str, Any] = {"x-herald": "the route's own response model"}
"""The schema the route declares itself (``responses={200: {"model": ...}}``), kept."""
STATUS = {"type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"]}
ANSWERS: dict[str, Answer] = {
    "GET /api/v1/event/stream": Answer(
        200, {"type": "string"}, LIST, "text/event-stream", "Server-Sent Events, one per event"
    ),
    "GET /api/v1/event/stats": Answer(200, _ref(schemas.Stats), LIST),
    "POST /api/v1/authenticate": Answer(
        200, _ref("AuthenticateOut"), (400, 401, 413, 422, 429, 503)
    ),
    "GET /api/v1/event/type": Answer(200, _array(schemas.EventType), AUTH),
    "GET /api/v1/event/severity": Answer(200, _array(schemas.Level), AUTH),
    "GET /api/v1/event/criticality": Answer(200, _array(schemas.Level), AUTH),
    "GET /api/v1/event/source": Answer(200, _array(schemas.Level), AUTH),
    "GET /api/v1/event/moniker": Answer(200, _array(schemas.MonikerOut), AUTH),
    "POST /api/v1/event": Answer(
        201,
        {"oneOf": [_ref(schemas.Event), _array(schemas.Event)]},
        WRITE,
        description="The stored event (an object), or the batch (an array)",
    ),
    "GET /api/v1/event": Answer(200, _array(schemas.Event), LIST),
    "GET /api/v1/event/{event_id}": Answer(200, _ref(schemas.Event), ITEM),
    "GET /api/v1/endpoint/{endpoint_id}/event": Answer(200, _array(schemas.Event), LIST),
    "GET /api/v1/sim/{sim_id}/event": Answer(200, _array(schemas.Event), LIST),
    "GET /api/v1/user/{user_id}/event": Answer(200, _array(schemas.Event), LIST),
    "GET /api/v1/organisation/{organisation_id}/event": Answer(200, _array(schemas.Event), LIST),
    "POST /api/v1/ingest/emnify": Answer(200, FROM_ROUTE, WRITE),
    "POST /api/v1/ingest/1nce": Answer(200, FROM_ROUTE, WRITE),
    "POST /api/v1/ingest/stacuity": Answer(200, FROM_ROUTE, WRITE),
    "GET /api/v1/ingest/rejected": Answer(200, FROM_ROUTE, READ),
    "POST /api/v1/ingest/rejected/retry": Answer(200, FROM_ROUTE, READ),
    "GET /api/v1/ingest/rejected/{rejected_id}": Answer(200, FROM_ROUTE, ITEM),
    "POST /api/v1/ingest/rejected/{rejected_id}/retry": Answer(200, FROM_ROUTE, ITEM),
    "DELETE /api/v1/ingest/rejected/{rejected_id}": Answer(204, None, ITEM, description="Gone"),
    "GET /api/v1/event_handler": Answer(200, _array(schemas.HandlerOut), AUTH),
    "POST /api/v1/event_handler": Answer(201, _ref(schemas.HandlerOut), (409, *WRITE)),
    "GET /api/v1/event_handler/{handler_id}": Answer(200, _ref(schemas.HandlerOut), ITEM),
    "PATCH /api/v1/event_handler/{handler_id}": Answer(200, _ref(schemas.HandlerOut), ITEM_WRITE),
    "DELETE /api/v1/event_handler/{handler_id}": Answer(204, None, ITEM, description="Deleted"),
    "GET /api/v1/event_handler/{handler_id}/status": Answer(
        200, _ref(schemas.HandlerStatusOut), ITEM
    ),
    "GET /api/v1/event_handler/{handler_id}/delivery": Answer(
        200, _array(schemas.DeliveryOut), ITEM
    ),
    "POST /api/v1/event_handler/{handler_id}/replay": Answer(
        202, _ref(schemas.ReplayOut), ITEM_WRITE, description="Queued"
    ),
    "POST /api/v1/event_handler/{handler_id}/test": Answer(
        200, _ref(schemas.DeliveryOut), ITEM, description="How the receiver took the test event"
    ),
    "POST /api/v1/event_handler/{handler_id}/secret/rotate": Answer(
        200, _ref(schemas.HandlerOut), ITEM
    ),
    "GET /api/v1/rule": Answer(200, FROM_ROUTE, AUTH),
    "POST /api/v1/rule": Answer(201, FROM_ROUTE, (409, *WRITE)),
    "GET /api/v1/rule/alert": Answer(200, FROM_ROUTE, AUTH),
    "POST /api/v1/rule/preview": Answer(200, FROM_ROUTE, WRITE),
    "GET /api/v1/rule/{rule_id}": Answer(200, FROM_ROUTE, ITEM),
    "PATCH /api/v1/rule/{rule_id}": Answer(200, FROM_ROUTE, ITEM_WRITE),
    "DELETE /api/v1/rule/{rule_id}": Answer(204, None, ITEM, description="Deleted"),
    "GET /api/v1/endpoint": Answer(200, _array(answers.EndpointSummary), LIST),
    "GET /api/v1/endpoint/status_counts": Answer(200, _ref(answers.StatusCounts), LIST),
    "GET /api/v1/endpoint/{endpoint_id}/connectivity": Answer(
        200, _ref(answers.Connectivity), ITEM
    ),
    "GET /api/v1/organisation": Answer(200, FROM_ROUTE, AUTH),
    "GET /api/v1/organisation/{organisation_id}/device_events": Answer(200, FROM_ROUTE, ITEM),
    "PUT /api/v1/organisation/{organisation_id}/device_events": Answer(200, FROM_ROUTE, ITEM_WRITE),
    "GET /api/v1/endpoint/{endpoint_id}/stats/daily": Answer(
        200, _array(answers.UsageDay), (400, 404, 422, *AUTH)
    ),
    "GET /api/v1/endpoint/{endpoint_id}/stats": Answer(200, _ref(answers.UsageStats), ITEM),
    "GET /api/v1/endpoint/{endpoint_id}/usage/records": Answer(
        200, FROM_ROUTE, (400, 404, 422, *AUTH)
    ),
    "GET /1nce/management-api/v1/sims/{iccid}/events": Answer(200, FROM_ROUTE, (422, *ITEM)),
    "GET /1nce/management-api/v1/sims/{iccid}/status": Answer(200, FROM_ROUTE, ITEM),
    "GET /1nce/management-api/v1/sims/{iccid}/usage": Answer(200, FROM_ROUTE, (422, *ITEM)),
    "GET /health": Answer(200, STATUS, ()),
    "GET /ready": Answer(200, STATUS, (503,)),
    "GET /metrics": Answer(200, {"type": "string"}, (401, 403, 429, 503), "text/plain"),
}
"""``METHOD path`` -> what the operation answers."""

HANDLER_OPERATIONS = (
    ("GetHandler", "GET", ""),
    ("UpdateHandler", "PATCH", ""),
    ("DeleteHandler", "DELETE", ""),
    ("HandlerStatus", "GET", "/status"),
    ("HandlerDeliveries", "GET", "/delivery"),
    ("ReplayHandler", "POST", "/replay"),
    ("RotateHandlerSecret", "POST", "/secret/rotate"),
)
"""Where a created handler's id leads (``/test`` is left out: it sends a request)."""

BODY_EXAMPLES: dict[str, Any] = {
    "/api/v1/event": {
        "event_type": {"id": 10001},
        "description": "Battery below 10 %",
        "endpoint": {"id": 5},
        "detail": {"battery": 9},
    },
    "/api/v1/ingest/emnify": {
        "id": 1234567,
        "timestamp": "2026-11-01T10:42:58.000Z",
        "event_type": {"id": 3, "description": "Create PDP Context"},
        "event_severity": {"id": 0, "description": "Info"},
        "event_source": {"id": 1, "description": "Policy Control"},
        "alert": False,
        "description": "PDP Context accepted",
        "endpoint": {"id": 5, "name": "tracker-5"},
    },
    "/api/v1/ingest/stacuity": {
        "eventId": "8f1c2d3e",
        "eventTime": "2026-11-01T10:42:58Z",
        "eventType": "endpointauthenticated_v1",
        "endpointId": "5",
        "detail": {},
    },
}
"""Valid bodies, for readers and for the examples a fuzzer starts from."""

_STATS_PARAMETERS: list[dict[str, Any]] = [
    {"name": "q", "in": "query", "schema": {"type": "string"}, "description": "As GET /event"},
    {"name": "from", "in": "query", "schema": {"type": "string", "format": "date-time"}},
    {"name": "until", "in": "query", "schema": {"type": "string", "format": "date-time"}},
    {"name": "bucket", "in": "query", "schema": {"type": "string", "enum": list(BUCKETS)}},
    {"name": "group", "in": "query", "schema": {"type": "string", "enum": list(STATS_GROUPS)}},
    {"name": "order", "in": "query", "schema": {"type": "string", "enum": list(ORDERS)}},
    {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
        "description": "Top N groups (with group, not with bucket)",
    },
]
_OUT_MODELS: tuple[type[BaseModel], ...] = (
    schemas.Problem,
    schemas.Event,
    schemas.Stats,
    schemas.EventType,
    schemas.Level,
    schemas.MonikerOut,
    schemas.HandlerOut,
    schemas.DeliveryOut,
    schemas.HandlerStatusOut,
    schemas.ReplayOut,
)


def _components() -> dict[str, Any]:
    """Every model's schema by name (nested models hoisted beside them)."""
    pairs = [(model, "serialization") for model in _OUT_MODELS]
    _, out = models_json_schema(pairs, ref_template=REF)  # type: ignore[arg-type]
    _, event_in = codec.schema()  # the codec's own types: document and validator agree
    typed: dict[str, Any] = {}  # the answers declared as TypedDicts (devices.answers)
    for answer in answers.ANSWERS:
        schema = TypeAdapter(answer).json_schema(ref_template=REF, mode="serialization")
        typed.update(schema.pop("$defs", {}))
        typed[answer.__name__] = schema
    return {**event_in, **out.get("$defs", {}), **typed}


def _error(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": ERROR_TEXT[status],
        "content": {PROBLEM_JSON: {"schema": _ref(schemas.Problem)}},
    }
    if status in (429, 503):
        response["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
    if status == 401:
        response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    return response


def _answer(operation: dict[str, Any], answer: Answer) -> None:
    success: dict[str, Any] = {"description": answer.description}
    if answer.schema is FROM_ROUTE:
        success = operation["responses"][str(answer.status)]
    elif answer.schema is not None:
        success["content"] = {answer.media_type: {"schema": answer.schema}}
    operation["responses"] = {
        str(answer.status): success,
        **{str(status): _error(status) for status in answer.errors},
    }


def _unlisted(operation: dict[str, Any]) -> Answer:
    """A route not in the table yet (a test says so): its own answer, problem+json errors."""
    status = next(code for code in operation["responses"] if code.startswith("2"))
    return Answer(int(status), FROM_ROUTE, (400, 404, 422, *AUTH))


def _links(paths: dict[str, Any]) -> None:
    base = "/api/v1/event_handler/{handler_id}"
    links = {
        name: {
            "operationId": paths[base + suffix][method.lower()]["operationId"],
            "parameters": {"handler_id": "$response.body#/id"},
        }
        for name, method, suffix in HANDLER_OPERATIONS
    }
    paths["/api/v1/event_handler"]["post"]["responses"]["201"]["links"] = links


def build_document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, with the table above applied."""
    document = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        routes=app.routes,
    )
    paths: dict[str, Any] = document["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            answer = ANSWERS.get(f"{method.upper()} {path}") or _unlisted(operation)
            _answer(operation, answer)
    paths["/api/v1/event/stats"]["get"]["parameters"] = _STATS_PARAMETERS
    for path, example in BODY_EXAMPLES.items():
        paths[path]["post"]["requestBody"]["content"]["application/json"]["example"] = example
    _links(paths)
    schemas_ = document.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas_.pop(unused, None)
    schemas_.update(_components())
    return document


def install_docs(app: FastAPI, docs_url: str = DOCS_URL) -> None:
    """Swagger UI at ``docs_url``, its script and stylesheet served by Herald itself (from
    the swagger-ui-bundle-v2 package): the page works without internet (air-gapped)."""
    assets = f"{docs_url}/assets"
    app.mount(assets, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")

    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/api/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},  # no call to swagger.io's validator
        )

    app.add_api_route(docs_url, docs, methods=["GET"], include_in_schema=False)


def install(app: FastAPI) -> None:
    """Serve the exact document at the app's ``openapi_url`` (built once, on first use)."""
    built: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not built:
            built.update(build_document(app))
        return built

    app.openapi = openapi  # type: ignore[method-assign]
