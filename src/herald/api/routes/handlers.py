"""Event handlers: register webhooks and broker sinks (MQTT, NATS JetStream, AMQP, S3),
watch their delivery, replay, test, rotate secrets; over ``handlers/service.py``."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query
from starlette.responses import Response

from herald.api.deps import ServicesDep, get_principal, require
from herald.api.problems import Problem
from herald.api.schemas import DeliveryOut, HandlerOut, HandlerStatusOut, ReplayOut, answer
from herald.auth import Principal
from herald.handlers import service
from herald.handlers.input import HandlerIn, HandlerPatch, ReplayIn
from herald.timefmt import to_ms

router = APIRouter(tags=["event handlers"])
Manager = Annotated[Principal, Depends(require("handler:manage"))]
HandlerId = Annotated[int, Path(ge=0, le=2**63 - 1)]  # SQLite integers are 64-bit


async def _reader(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    if not (principal.can("handler:read") or principal.can("handler:manage")):
        raise Problem(403, "Forbidden", "this token lacks the permission 'handler:read'")
    return principal


Reader = Annotated[Principal, Depends(_reader)]


@router.post("/event_handler", status_code=201)
async def create_handler(
    body: HandlerIn, services: ServicesDep, principal: Manager
) -> dict[str, Any]:
    """Register a handler; a webhook's answer holds its signing secret, shown only here."""
    handler, secret = await service.create_handler(services, principal, body)
    return answer(HandlerOut.of(handler, secret=secret))


@router.get("/event_handler")
async def list_handlers(services: ServicesDep, principal: Reader) -> list[dict[str, Any]]:
    """The organisation's handlers."""
    handlers = await service.list_handlers(services, principal)
    return [answer(HandlerOut.of(handler)) for handler in handlers]


@router.get("/event_handler/{handler_id}")
async def get_handler(
    handler_id: HandlerId, services: ServicesDep, principal: Reader
) -> dict[str, Any]:
    """One handler (never its secret)."""
    return answer(HandlerOut.of(await service.get_handler(services, principal, handler_id)))


@router.patch("/event_handler/{handler_id}")
async def update_handler(
    handler_id: HandlerId, body: HandlerPatch, services: ServicesDep, principal: Manager
) -> dict[str, Any]:
    """Change a handler; ``enabled: true`` resumes a disabled one where it stopped."""
    handler = await service.update_handler(services, principal, handler_id, body)
    return answer(HandlerOut.of(handler))


@router.delete("/event_handler/{handler_id}", status_code=204)
async def delete_handler(
    handler_id: HandlerId, services: ServicesDep, principal: Manager
) -> Response:
    """Delete a handler with its attempt log."""
    await service.delete_handler(services, principal, handler_id)
    return Response(status_code=204)


@router.get("/event_handler/{handler_id}/status")
async def get_status(
    handler_id: HandlerId, services: ServicesDep, principal: Reader
) -> dict[str, Any]:
    """State, lag in events and seconds, failures, next attempt, where delivery runs."""
    return answer(HandlerStatusOut.of(await service.status(services, principal, handler_id)))


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
    deliveries = await service.deliveries(services, principal, handler_id, cursor, per_page)
    headers = {"X-Next-Cursor": str(deliveries[-1].id)} if len(deliveries) == per_page else {}
    return Response(
        orjson.dumps([answer(DeliveryOut.of(delivery)) for delivery in deliveries]),
        headers=headers,
        media_type="application/json",
    )


@router.post("/event_handler/{handler_id}/replay", status_code=202)
async def replay(
    handler_id: HandlerId, body: ReplayIn, services: ServicesDep, principal: Manager
) -> dict[str, Any]:
    """Deliver again the handler's events of ``[from, until]`` (until defaults to now),
    beside the live stream, whose cursor does not move."""
    until_ms = to_ms(body.until) if body.until else None
    queued = await service.replay(services, principal, handler_id, to_ms(body.from_), until_ms)
    return answer(ReplayOut.of(queued))


@router.post("/event_handler/{handler_id}/test")
async def send_test(
    handler_id: HandlerId, services: ServicesDep, principal: Manager
) -> dict[str, Any]:
    """Send one test event now (a webhook's signed) and answer how the receiver or the
    broker took it (``detail``: what the broker acknowledged)."""
    sent = await service.send_test(services, principal, handler_id)
    return answer(DeliveryOut.of_test(sent.delivery, sent.detail))


@router.post("/event_handler/{handler_id}/secret/rotate")
async def rotate_secret(
    handler_id: HandlerId, services: ServicesDep, principal: Manager
) -> dict[str, Any]:
    """Issue a new signing secret; the old one signs too for 24 hours more."""
    rotated = await service.rotate_secret(services, principal, handler_id)
    out = HandlerOut.of(
        rotated.handler, secret=rotated.secret, secret_until_ms=rotated.previous_valid_until_ms
    )
    return answer(out)
