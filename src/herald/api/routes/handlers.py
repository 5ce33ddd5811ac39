"""Event handlers: register webhooks and broker sinks (MQTT, NATS JetStream, AMQP, S3),
watch their delivery, replay, test, rotate secrets."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from starlette.responses import Response

from herald.api.deps import ServicesDep, get_principal, require
from herald.api.problems import Problem, field_problem
from herald.auth import Principal
from herald.delivery.filters import MAX_FILTER_CHARS, canonical_filter
from herald.delivery.formats import MAX_BATCH_BODY_BYTES, Item
from herald.delivery.headers import (
    MAX_HEADER_NAME_CHARS,
    MAX_HEADER_VALUE_CHARS,
    MAX_HEADERS,
    MAX_TIMEOUT_SECONDS,
    MIN_TIMEOUT_SECONDS,
)
from herald.delivery.requests import build_request
from herald.delivery.signing import new_secret
from herald.delivery.sinks import (
    Outgoing,
    SettingsError,
    check_settings,
    check_url,
    credentials_of,
    open_sink,
)
from herald.delivery.sinks.tls import MAX_PEM_CHARS
from herald.delivery.status import handler_status
from herald.delivery.targets import TargetRefused, check_target, resolve
from herald.delivery.webhook import WebhookSender
from herald.handlers.types import Delivery, Handler, HandlerSpec
from herald.model import Timestamp
from herald.query.syntax import FilterError
from herald.sealing import SecretUnavailable
from herald.timefmt import format_ms, now_ms, to_ms

router = APIRouter(tags=["event handlers"])
Manager = Annotated[Principal, Depends(require("handler:manage"))]
SECRET_GRACE_MS = 24 * 3600 * 1000
RETRY = {"Retry-After": "1"}
HandlerId = Annotated[int, Path(ge=0, le=2**63 - 1)]  # SQLite integers are 64-bit
MIN_BATCH_BYTES = 1024
MAX_BATCH_BYTES = MAX_BATCH_BODY_BYTES
MAX_BATCH_EVENTS = 10_000  # emnify's data streamer's largest bulk
Format = Literal["native", "cloudevents", "ndjson", "stacuity"]


async def _reader(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    if not (principal.can("handler:read") or principal.can("handler:manage")):
        raise Problem(403, "Forbidden", "this token lacks the permission 'handler:read'")
    return principal


Reader = Annotated[Principal, Depends(_reader)]


# printable ASCII only; which schemes a type takes is checked by delivery.sinks
TARGET_URL = r"^(?:https?|mqtts?|nats|tls|amqps?)://[A-Za-z0-9._~%:\[\]-]+(?:[/?#][!-~]*)?$"
_TARGET_URL = re.compile(TARGET_URL)
TARGET_SCHEMES = ("http", "https", "mqtt", "mqtts", "nats", "tls", "amqp", "amqps")


def _target_url(value: str) -> str:
    """The URL if it has the form of a target; a sentence saying what is wrong if not."""
    if _TARGET_URL.fullmatch(value):
        return value
    scheme, sep, rest = value.partition("://")
    if not sep:
        raise ValueError("must be a URL with a scheme and a host, e.g. https://example.com/hook")
    if scheme not in TARGET_SCHEMES:
        raise ValueError(
            f"scheme {scheme[:16]!r} is not one Herald delivers to; use {', '.join(TARGET_SCHEMES)}"
        )
    if not rest or rest[0] in "/?#":
        raise ValueError(f"needs a host after {scheme}://")
    raise ValueError(
        "must be printable ASCII without spaces: scheme://host[:port][/path] "
        "(percent-encode other characters)"
    )


TargetUrl = Annotated[
    str,
    StringConstraints(min_length=1, max_length=2048),
    AfterValidator(_target_url),
    Field(
        json_schema_extra={"pattern": TARGET_URL},
        examples=["http://localhost:9/herald"],
        description="webhook: http(s); mqtt: mqtt(s)://host:port; nats: nats:// or tls://; "
        "amqp: amqp(s)://host:port/vhost; s3: the S3 endpoint, http(s)://host:port",
    ),
]
Setting = Annotated[str, StringConstraints(max_length=255)]
Credential = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
Pem = Annotated[str, StringConstraints(max_length=MAX_PEM_CHARS)]
HeaderName = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=MAX_HEADER_NAME_CHARS, pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
    ),
]
HeaderValue = Annotated[
    str, StringConstraints(max_length=MAX_HEADER_VALUE_CHARS, pattern=r"^[\t\x20-\x7e]*$")
]
HandlerType = Literal["webhook", "mqtt", "nats", "amqp", "s3"]


class SinkSettingsIn(BaseModel):
    """A broker sink's settings; which ones a type takes (and needs) is checked on write.
    Templates take {organisation_id}, {event_type}, {moniker}, {severity}, {endpoint_id},
    {target_type} and {target_id}."""

    model_config = ConfigDict(extra="forbid", strict=True)

    topic: Setting | None = Field(default=None, description="mqtt: topic template")
    subject: Setting | None = Field(default=None, description="nats: subject template")
    exchange: Setting | None = Field(default=None, description='amqp: exchange ("": default)')
    routing_key: Setting | None = Field(default=None, description="amqp: routing key template")
    bucket: Setting | None = Field(default=None, description="s3: bucket")
    region: Setting | None = Field(default=None, description="s3: region (us-east-1)")
    tls_verify: bool | None = Field(default=None, description="verify the TLS certificate")
    ca_cert: Pem | None = Field(
        default=None,
        description="mqtts, tls, amqps: the PEM CA bundle that verifies the broker instead of "
        "the system's CAs (a private CA); \"\": the system's again",
    )
    headers: dict[HeaderName, HeaderValue] | None = Field(
        default=None,
        max_length=MAX_HEADERS,
        description=f"webhook: custom request headers (at most {MAX_HEADERS}; names are tokens; "
        "values printable ASCII, no CR/LF; never hop-by-hop ones, Host, Content-Length, "
        "Content-Type, Expect, Authorization (use credentials) or the webhook-* signature "
        "headers). Given, it replaces the current ones ({}: none). Shown in answers: put "
        "secrets in credentials.",
        examples=[{"X-Api-Key-Id": "fleet-a", "X-Tenant": "acme"}],
    )
    timeout_seconds: float | None = Field(
        default=None,
        ge=MIN_TIMEOUT_SECONDS,
        le=MAX_TIMEOUT_SECONDS,
        description="webhook: this handler's request timeout (connect, send and answer); "
        "absent: HERALD_DELIVERY_TIMEOUT_SECONDS",
        examples=[5],
    )


class CredentialsIn(BaseModel):
    """A handler's credentials: write-only, sealed at rest, never answered or logged. A
    webhook's authenticate it to its receiver: ``token`` (``Authorization: Bearer``) or
    ``username`` and ``password`` (``Authorization: Basic``)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    username: Credential | None = Field(
        default=None, description="mqtt, nats, amqp; webhook: Basic (with password)"
    )
    password: Credential | None = Field(
        default=None, description="mqtt, nats, amqp; webhook: Basic (with username)"
    )
    token: Credential | None = Field(default=None, description="nats; webhook: Bearer")
    access_key_id: Credential | None = Field(default=None, description="s3")
    secret_access_key: Credential | None = Field(default=None, description="s3")
    client_cert: Pem | None = Field(
        default=None, description="mqtts, tls, amqps: the client certificate (PEM, chain)"
    )
    client_key: Pem | None = Field(
        default=None, description="mqtts, tls, amqps: its private key (PEM, unencrypted)"
    )


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    max_events: int = Field(
        default=1,
        ge=1,
        le=MAX_BATCH_EVENTS,
        description="1: one event per request; more: a JSON array (NDJSON lines) of up to "
        f"{MAX_BATCH_EVENTS:,}, whose records hold {MAX_BATCH_BODY_BYTES // 2**20} MiB at most "
        "whatever max_bytes says",
    )
    max_wait_ms: int = Field(default=0, ge=0, le=60_000)
    max_bytes: int | None = Field(
        default=None,
        ge=MIN_BATCH_BYTES,
        le=MAX_BATCH_BYTES,
        description="The most record bytes (each an NDJSON line) a batch carries; a batch "
        "holds one event at least, however big. Absent: "
        f"{MAX_BATCH_BODY_BYTES // 2**20} MiB.",
    )


FilterText = Annotated[str, StringConstraints(max_length=MAX_FILTER_CHARS)]


class HandlerIn(BaseModel):
    """A new event handler."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=256)
    type: HandlerType = "webhook"
    url: TargetUrl
    settings: SinkSettingsIn | None = None
    credentials: CredentialsIn | None = None
    format: Format = Field(
        default="native",
        description="native: Herald's records; cloudevents: CloudEvents 1.0; ndjson: one "
        "record a line; stacuity: Stacuity's envelope (eventId, eventTime, eventType, "
        "accountId, endpointId or routingTargetId, detail, herald: the record)",
    )
    filter: FilterText | dict[str, Any] = Field(
        default="",
        description="Which events it gets, in the event list's q syntax "
        '("type:3|5,severity:warn,tags:fleet_a"); empty: all of the organisation\'s.',
    )
    batch: BatchIn = Field(default_factory=BatchIn)
    enabled: bool = True
    retention_days: float | None = Field(default=None, gt=0, le=30)
    organisation_id: int | None = Field(
        default=None,
        ge=1,
        le=2**53,  # what an event's organisation.id holds
        description="Internal tokens only: the organisation it is for.",
    )


class HandlerPatch(BaseModel):
    """Changes to a handler; absent fields stay as they are."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str | None = Field(default=None, min_length=1, max_length=256)
    url: TargetUrl | None = None
    settings: SinkSettingsIn | None = Field(
        default=None, description="merged into the current settings"
    )
    credentials: CredentialsIn | None = Field(
        default=None, description="replace the credentials ({}: none)"
    )
    format: Format | None = None
    filter: FilterText | dict[str, Any] | None = None
    batch: BatchIn | None = None
    enabled: bool | None = Field(
        default=None,
        description="false pauses the handler: its cursor stays where it is, and true resumes "
        "it there, the backlog (the events still stored) delivered in order",
    )
    retention_days: float | None = Field(default=None, gt=0, le=30)


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)

    from_: Timestamp = Field(alias="from")
    until: Timestamp | None = None


def _time(ms: int | None) -> str | None:
    return format_ms(ms) if ms is not None else None


def handler_json(handler: Handler, *, secret: str | None = None) -> dict[str, Any]:
    """A handler as the API shows it; the secret only when just issued; credentials never
    (only whether some are set)."""
    spec = handler.spec
    body: dict[str, Any] = {
        "id": handler.id,
        "organisation": {"id": handler.organisation_id},
        "name": spec.name,
        "type": spec.type,
        "url": spec.url,
        "settings": orjson.loads(spec.settings or "{}"),
        "credentials_set": bool(spec.credentials),
        "format": spec.format,
        "filter": spec.filter,
        "batch": {
            "max_events": spec.batch_max_events,
            "max_wait_ms": spec.batch_max_wait_ms,
            "max_bytes": spec.batch_max_bytes,
        },
        "enabled": spec.enabled,
        "disabled_reason": handler.disabled_reason,
        "retention_days": spec.retention_ms / 86_400_000,
        "created": format_ms(handler.created_ms),
        "updated": format_ms(handler.updated_ms),
    }
    if secret is not None:
        body["secret"] = secret
    return body


def delivery_json(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "time": format_ms(delivery.at_ms),
        "kind": delivery.kind,
        "event_ids": list(delivery.event_ids),
        "status": delivery.status,
        "outcome": delivery.outcome,
        "error": delivery.error,
        "latency_ms": delivery.latency_ms,
    }


async def _check_url(services: ServicesDep, kind: str, url: str) -> None:
    """Refuse a URL by its form for the type, or by where its host resolves now."""
    allow_private = services.settings.allow_private_targets
    try:
        if kind == "webhook":
            await check_target(url, allow_private)
        else:
            host, port = check_url(kind, url)
            await resolve(host, port, allow_private)
    except SettingsError as exc:
        raise field_problem(422, exc.field, exc.reason, "Invalid event handler") from exc
    except TargetRefused as exc:
        raise field_problem(422, "url", str(exc), "Invalid event handler") from exc


def _sink_settings(
    services: ServicesDep,
    kind: str,
    url: str,
    settings: dict[str, Any],
    credentials: dict[str, Any] | None,
) -> tuple[str, str | None]:
    """The settings (JSON) and sealed credentials to store; 422 naming a bad field."""
    try:
        checked, opened = check_settings(kind, url, settings, credentials)
    except SettingsError as exc:
        raise field_problem(422, exc.field, exc.reason, "Invalid event handler") from exc
    sealed = services.secret_box.seal(orjson.dumps(opened).decode()) if opened else None
    return orjson.dumps(checked).decode(), sealed


def _stored_credentials(services: ServicesDep, handler: Handler) -> dict[str, str]:
    try:
        return credentials_of(handler, services.secret_box)
    except SecretUnavailable as exc:
        raise Problem(503, "Secret unavailable", str(exc)) from exc


def _given(model: BaseModel | None) -> dict[str, Any]:
    return model.model_dump(exclude_none=True) if model is not None else {}


def _filter(services: ServicesDep, value: str | dict[str, Any]) -> str:
    try:
        return canonical_filter(value, services.catalog)
    except FilterError as exc:
        raise field_problem(422, exc.field, exc.reason, "Invalid event handler") from exc


async def _get(services: ServicesDep, principal: Principal, handler_id: int) -> Handler:
    handler = await services.run(
        services.store.get_handler, handler_id, principal.organisation_scope
    )
    if handler is None:
        raise Problem(404, "Not found", f"no event handler {handler_id}")
    return handler


def _organisation_for(services: ServicesDep, principal: Principal, named: int | None) -> int:
    if not principal.internal:
        if named is not None and named != principal.organisation_id:
            raise field_problem(
                403, "organisation_id", "this token acts only for its own", "Forbidden"
            )
        assert principal.organisation_id is not None
        return principal.organisation_id
    if named is None:
        raise field_problem(422, "organisation_id", "required with an internal token")
    if services.organisation(named) is None:
        raise field_problem(422, "organisation_id", "unknown organisation")
    return named


async def _audit(
    services: ServicesDep, principal: Principal, handler: Handler, action: str
) -> None:
    """Record the change as a security event of the handler's organisation."""
    await services.run(
        services.audit.handler_changed,
        handler.organisation_id,
        handler.id,
        handler.spec.name,
        action,
        principal.token_id,
    )


@router.post("/event_handler", status_code=201)
async def create_handler(
    body: HandlerIn, services: ServicesDep, principal: Manager
) -> dict[str, Any]:
    """Register a handler; a webhook's answer holds its signing secret, shown only here."""
    organisation_id = _organisation_for(services, principal, body.organisation_id)
    settings, credentials = _sink_settings(
        services, body.type, body.url, _given(body.settings), _given(body.credentials)
    )
    await _check_url(services, body.type, body.url)
    retention_days = body.retention_days or services.settings.handler_retention_days
    spec = HandlerSpec(
        name=body.name,
        type=body.type,
        url=body.url,
        settings=settings,
        credentials=credentials,
        format=body.format,
        filter=_filter(services, body.filter),
        batch_max_events=body.batch.max_events,
        batch_max_wait_ms=body.batch.max_wait_ms,
        batch_max_bytes=body.batch.max_bytes,
        enabled=body.enabled,
        retention_ms=int(retention_days * 86_400_000),
    )
    secret = new_secret()
    sealed = services.secret_box.seal(secret)
    handler = await services.run(
        services.store.create_handler,
        organisation_id,
        spec,
        sealed,
        services.settings.max_handlers_per_organisation,
    )
    await _audit(services, principal, handler, "created")
    return handler_json(handler, secret=secret if body.type == "webhook" else None)


@router.get("/event_handler")
async def list_handlers(services: ServicesDep, principal: Reader) -> list[dict[str, Any]]:
    """The organisation's handlers."""
    handlers = await services.run(services.store.list_handlers, principal.organisation_scope)
    return [handler_json(handler) for handler in handlers]


@router.get("/event_handler/{handler_id}")
async def get_handler(
    handler_id: HandlerId, services: ServicesDep, principal: Reader
) -> dict[str, Any]:
    """One handler (never its secret)."""
    return handler_json(await _get(services, principal, handler_id))


@router.patch("/event_handler/{handler_id}")
async def update_handler(
    handler_id: HandlerId, body: HandlerPatch, services: ServicesDep, principal: Manager
) -> dict[str, Any]:
    """Change a handler; ``enabled: true`` resumes a disabled one where it stopped."""
    stored = await _get(services, principal, handler_id)
    current = stored.spec
    url = body.url if body.url is not None else current.url
    settings, credentials = current.settings, current.credentials
    if body.url is not None or body.settings is not None or body.credentials is not None:
        merged = {**orjson.loads(current.settings or "{}"), **_given(body.settings)}
        if body.credentials is not None:
            given = _given(body.credentials)
        else:  # the stored ones, checked against the new URL (a client cert needs TLS)
            given = _stored_credentials(services, stored)
        settings, sealed = _sink_settings(services, current.type, url, merged, given)
        if body.credentials is not None:
            credentials = sealed
    if body.url is not None and body.url != current.url:
        await _check_url(services, current.type, url)
    changes: dict[str, Any] = {
        "name": body.name,
        "url": body.url,
        "settings": settings,
        "format": body.format,
        "enabled": body.enabled,
        "filter": _filter(services, body.filter) if body.filter is not None else None,
    }
    if body.batch is not None:
        changes["batch_max_events"] = body.batch.max_events
        changes["batch_max_wait_ms"] = body.batch.max_wait_ms
    if body.retention_days is not None:
        changes["retention_ms"] = int(body.retention_days * 86_400_000)
    spec = HandlerSpec(
        **{
            name: changes[name] if changes.get(name) is not None else getattr(current, name)
            for name in HandlerSpec.__dataclass_fields__
            if name not in ("credentials", "batch_max_bytes")
        },
        credentials=credentials,
        # a batch given replaces the batch: without max_bytes, bounded by count alone
        batch_max_bytes=body.batch.max_bytes if body.batch else current.batch_max_bytes,
    )
    handler = await services.run(
        services.store.update_handler, handler_id, principal.organisation_scope, spec
    )
    await _audit(services, principal, handler, "updated")
    return handler_json(handler)


@router.delete("/event_handler/{handler_id}", status_code=204)
async def delete_handler(
    handler_id: HandlerId, services: ServicesDep, principal: Manager
) -> Response:
    """Delete a handler with its attempt log."""
    handler = await _get(services, principal, handler_id)
    await services.run(services.store.delete_handler, handler_id, principal.organisation_scope)
    await _audit(services, principal, handler, "deleted")
    return Response(status_code=204)


@router.get("/event_handler/{handler_id}/status")
async def get_status(
    handler_id: HandlerId, services: ServicesDep, principal: Reader
) -> dict[str, Any]:
    """State, lag in events and seconds, failures, next attempt, where delivery runs."""
    handler = await _get(services, principal, handler_id)
    return await services.run(handler_status, services.store, handler)


@router.get("/event_handler/{handler_id}/delivery")
async def list_deliveries(
    handler_id: HandlerId,
    services: ServicesDep,
    principal: Reader,
    per_page: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="X-Next-Cursor of the last page")
    ] = None,
) -> Response:
    """The attempt log, newest first; page on with ``cursor``."""
    await _get(services, principal, handler_id)
    deliveries = await services.run(services.store.list_deliveries, handler_id, cursor, per_page)
    headers = {"X-Next-Cursor": str(deliveries[-1].id)} if len(deliveries) == per_page else {}
    return Response(
        orjson.dumps([delivery_json(d) for d in deliveries]),
        headers=headers,
        media_type="application/json",
    )


@router.post("/event_handler/{handler_id}/replay", status_code=202)
async def replay(
    handler_id: HandlerId, body: ReplayIn, services: ServicesDep, principal: Manager
) -> dict[str, Any]:
    """Deliver again the handler's events of ``[from, until]`` (until defaults to now),
    beside the live stream, whose cursor does not move."""
    await _get(services, principal, handler_id)
    from_ms = to_ms(body.from_)
    until_ms = to_ms(body.until) if body.until else now_ms()
    if until_ms < from_ms:
        raise field_problem(422, "until", "must not be before from")
    queued = await services.run(services.store.create_replay, handler_id, from_ms, until_ms)
    return {
        "id": queued.id,
        "from": format_ms(queued.from_ms),
        "until": format_ms(queued.until_ms),
        "done": queued.done_ms is not None,
    }


@router.post("/event_handler/{handler_id}/test")
async def send_test(
    handler_id: HandlerId, services: ServicesDep, principal: Manager
) -> dict[str, Any]:
    """Send one test event now (a webhook's signed) and answer how the receiver or the
    broker took it (``detail``: what the broker acknowledged)."""
    handler = await _get(services, principal, handler_id)
    organisation = services.organisation(handler.organisation_id)
    now = datetime.now(UTC)
    event_id = services.ids.next_id()
    record = {
        "id": event_id,
        "timestamp": format_ms(to_ms(now)),
        "received": format_ms(to_ms(now)),
        "event_type": {"id": 0, "description": "Generic"},
        "event_severity": {"id": 0, "description": "Info"},
        "event_source": {"id": 2, "description": "API"},
        "organisation": {"id": handler.organisation_id, "name": organisation and organisation.name},
        "alert": False,
        "description": "Herald test event",
        "test": True,
    }
    item = Item(0, event_id, orjson.dumps(record))
    msg_id = f"test_{secrets.token_hex(8)}"
    try:
        if handler.spec.type == "webhook":
            build_request(handler, [item], msg_id, now, services.secret_box)  # opens the secret
    except SecretUnavailable as exc:
        raise Problem(503, "Secret unavailable", str(exc)) from exc
    if handler.id in services.testing:  # one at a time: tests cannot pile up connections
        raise Problem(
            429, "Too many requests", "a test send of this handler is running", headers=RETRY
        )
    services.testing.add(handler.id)
    sender = WebhookSender(
        timeout=services.settings.delivery_timeout_seconds,
        allow_private=services.settings.allow_private_targets,
        max_connections=1,
    )
    try:
        sink = open_sink(
            handler,
            services.secret_box,
            sender,
            allow_private=services.settings.allow_private_targets,
            timeout=services.settings.delivery_timeout_seconds,
        )
        try:
            result = await sink.send(Outgoing(handler, [item], msg_id, now))
        finally:
            await sink.aclose()
    except SecretUnavailable as exc:
        raise Problem(503, "Secret unavailable", str(exc)) from exc
    finally:
        services.testing.discard(handler.id)
        await sender.aclose()
    delivery = Delivery(
        handler.id,
        handler.organisation_id,
        to_ms(now),
        "test",
        (event_id,),
        result.status,
        result.outcome,
        result.error,
        result.latency_ms,
    )
    await services.run(services.store.record_delivery, "api", delivery, None)
    answer = {key: value for key, value in delivery_json(delivery).items() if key != "id"}
    return {**answer, "detail": result.detail}


@router.post("/event_handler/{handler_id}/secret/rotate")
async def rotate_secret(
    handler_id: HandlerId, services: ServicesDep, principal: Manager
) -> dict[str, Any]:
    """Issue a new signing secret; the old one signs too for 24 hours more."""
    await _get(services, principal, handler_id)
    secret = new_secret()
    until = now_ms() + SECRET_GRACE_MS
    handler = await services.run(
        services.store.rotate_handler_secret,
        handler_id,
        principal.organisation_scope,
        services.secret_box.seal(secret),
        until,
    )
    await _audit(services, principal, handler, "secret rotated")
    return {**handler_json(handler, secret=secret), "previous_secret_valid_until": _time(until)}
