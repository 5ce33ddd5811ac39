"""Event handlers for a caller: create, read, change, delete, replay, test and rotate a
secret, each change recorded as a security event. Refusals are ``herald.errors``: a handler
not among the caller's is ``NotFound``, a bad setting, URL or filter ``Invalid`` naming
the field; a sealed secret that cannot be opened is ``SecretUnavailable``."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel

from herald.auth import Principal
from herald.delivery.formats import Item
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
from herald.delivery.status import HandlerStatus, handler_status
from herald.delivery.targets import TargetRefused, check_target, resolve
from herald.delivery.webhook import WebhookSender
from herald.errors import Invalid, NotFound, RetryLater
from herald.handlers.filters import canonical_filter
from herald.handlers.input import HandlerIn, HandlerPatch
from herald.handlers.types import Delivery, Handler, HandlerSpec, Replay
from herald.organisations.service import acting_for
from herald.query.syntax import FilterError
from herald.services import Services
from herald.timefmt import format_ms, now_ms, to_ms

SECRET_GRACE_MS = 24 * 3600 * 1000
INVALID = "Invalid event handler"


@dataclass(frozen=True, slots=True)
class SentTest:
    """A test send: the attempt as recorded, and what the broker acknowledged."""

    delivery: Delivery
    detail: str | None


@dataclass(frozen=True, slots=True)
class Rotated:
    """A handler with a new secret; the old one signs too until ``previous_valid_until_ms``."""

    handler: Handler
    secret: str
    previous_valid_until_ms: int


async def get_handler(services: Services, principal: Principal, handler_id: int) -> Handler:
    """One of the caller's handlers; ``NotFound`` otherwise."""
    handler = await services.run(
        services.store.handlers.get, handler_id, principal.organisation_scope
    )
    if handler is None:
        raise NotFound(f"no event handler {handler_id}")
    return handler


async def list_handlers(services: Services, principal: Principal) -> list[Handler]:
    """The caller's handlers."""
    return await services.run(services.store.handlers.all, principal.organisation_scope)


async def create_handler(
    services: Services, principal: Principal, body: HandlerIn
) -> tuple[Handler, str | None]:
    """Register a handler; its signing secret too when it is a webhook (shown only now)."""
    organisation_id = acting_for(services, principal, body.organisation_id)
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
        services.store.handlers.create,
        organisation_id,
        spec,
        sealed,
        services.settings.max_handlers_per_organisation,
    )
    await _audit(services, principal, handler, "created")
    return handler, secret if body.type == "webhook" else None


async def update_handler(
    services: Services, principal: Principal, handler_id: int, body: HandlerPatch
) -> Handler:
    """Change a handler; ``enabled: true`` resumes a disabled one where it stopped."""
    stored = await get_handler(services, principal, handler_id)
    current = stored.spec
    url = body.url if body.url is not None else current.url
    settings, credentials = current.settings, current.credentials
    if body.url is not None or body.settings is not None or body.credentials is not None:
        merged = {**orjson.loads(current.settings or "{}"), **_given(body.settings)}
        if body.credentials is not None:
            given = _given(body.credentials)
        else:  # the stored ones, checked against the new URL (a client cert needs TLS)
            given = credentials_of(stored, services.secret_box)
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
        services.store.handlers.update, handler_id, principal.organisation_scope, spec
    )
    await _audit(services, principal, handler, "updated")
    return handler


async def delete_handler(services: Services, principal: Principal, handler_id: int) -> None:
    """Delete a handler with its attempt log."""
    handler = await get_handler(services, principal, handler_id)
    await services.run(services.store.handlers.delete, handler_id, principal.organisation_scope)
    await _audit(services, principal, handler, "deleted")


async def status(services: Services, principal: Principal, handler_id: int) -> HandlerStatus:
    """State, lag in events and seconds, failures, next attempt, where delivery runs."""
    handler = await get_handler(services, principal, handler_id)
    return await services.run(handler_status, services.store, handler)


async def deliveries(
    services: Services, principal: Principal, handler_id: int, cursor: int | None, limit: int
) -> list[Delivery]:
    """A page of the attempt log, newest first, before ``cursor`` (an attempt's id)."""
    await get_handler(services, principal, handler_id)
    return await services.run(services.store.handlers.deliveries, handler_id, cursor, limit)


async def replay(
    services: Services, principal: Principal, handler_id: int, from_ms: int, until_ms: int | None
) -> Replay:
    """Queue the handler's events of ``[from, until]`` (until: now) for delivery again."""
    await get_handler(services, principal, handler_id)
    until_ms = until_ms if until_ms is not None else now_ms()
    if until_ms < from_ms:
        raise Invalid.at("until", "must not be before from")
    return await services.run(services.store.handlers.create_replay, handler_id, from_ms, until_ms)


async def send_test(services: Services, principal: Principal, handler_id: int) -> SentTest:
    """Send one test event now (a webhook's signed), one at a time per handler, and record
    how the receiver or the broker took it."""
    handler = await get_handler(services, principal, handler_id)
    now = datetime.now(UTC)
    event_id = services.ids.next_id()
    item = Item(0, event_id, orjson.dumps(sample_event(services, handler, event_id, now)))
    msg_id = f"test_{secrets.token_hex(8)}"
    if handler.spec.type == "webhook":
        build_request(handler, [item], msg_id, now, services.secret_box)  # opens the secret
    if handler.id in services.testing:  # one at a time: tests cannot pile up connections
        raise RetryLater(
            "a test send of this handler is running", title="Too many requests", retry_after=1
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
    await services.run(services.store.handlers.record_delivery, "api", delivery, None)
    return SentTest(delivery, result.detail)


def sample_event(
    services: Services, handler: Handler, event_id: int, now: datetime
) -> dict[str, Any]:
    """The test event a handler is sent: a generic event of its organisation, marked test."""
    organisation = services.organisation(handler.organisation_id)
    return {
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


async def rotate_secret(services: Services, principal: Principal, handler_id: int) -> Rotated:
    """Issue a new signing secret; the old one signs too for 24 hours more."""
    await get_handler(services, principal, handler_id)
    secret = new_secret()
    until = now_ms() + SECRET_GRACE_MS
    handler = await services.run(
        services.store.handlers.rotate_secret,
        handler_id,
        principal.organisation_scope,
        services.secret_box.seal(secret),
        until,
    )
    await _audit(services, principal, handler, "secret rotated")
    return Rotated(handler, secret, until)


async def _check_url(services: Services, kind: str, url: str) -> None:
    """Refuse a URL by its form for the type, or by where its host resolves now."""
    allow_private = services.settings.allow_private_targets
    try:
        if kind == "webhook":
            await check_target(url, allow_private)
        else:
            host, port = check_url(kind, url)
            await resolve(host, port, allow_private)
    except SettingsError as exc:
        raise Invalid.at(exc.field, exc.reason, title=INVALID) from exc
    except TargetRefused as exc:
        raise Invalid.at("url", str(exc), title=INVALID) from exc


def _sink_settings(
    services: Services,
    kind: str,
    url: str,
    settings: dict[str, Any],
    credentials: dict[str, Any] | None,
) -> tuple[str, str | None]:
    """The settings (JSON) and sealed credentials to store; ``Invalid`` naming a bad field."""
    try:
        checked, opened = check_settings(kind, url, settings, credentials)
    except SettingsError as exc:
        raise Invalid.at(exc.field, exc.reason, title=INVALID) from exc
    sealed = services.secret_box.seal(orjson.dumps(opened).decode()) if opened else None
    return orjson.dumps(checked).decode(), sealed


def _given(model: BaseModel | None) -> dict[str, Any]:
    return model.model_dump(exclude_none=True) if model is not None else {}


def _filter(services: Services, value: str | dict[str, Any]) -> str:
    try:
        return canonical_filter(value, services.catalog)
    except FilterError as exc:
        raise Invalid.at(exc.field, exc.reason, title=INVALID) from exc


async def _audit(services: Services, principal: Principal, handler: Handler, action: str) -> None:
    """Record the change as a security event of the handler's organisation."""
    await services.run(
        services.audit.handler_changed,
        handler.organisation_id,
        handler.id,
        handler.spec.name,
        action,
        principal.token_id,
    )
