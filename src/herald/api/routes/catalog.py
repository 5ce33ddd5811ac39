"""The catalogue: ``/event/type``, ``/event/severity``, ``/event/criticality``,
``/event/source``, ``/event/moniker``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from herald.api.deps import EventReader, ServicesDep

router = APIRouter(tags=["catalogue"])


@router.get("/event/type")
async def event_types(services: ServicesDep, _: EventReader) -> list[dict[str, Any]]:
    """Every system event type (custom codes >= 10000 are free for business events)."""
    return [event_type.as_dict() for event_type in services.catalog.types()]


@router.get("/event/severity")
async def event_severities(services: ServicesDep, _: EventReader) -> list[dict[str, Any]]:
    return services.catalog.severities()


@router.get("/event/criticality")
async def event_criticalities(services: ServicesDep, _: EventReader) -> list[dict[str, Any]]:
    """The platform event API's criticality levels: 0 not applicable, 1 critical ... 5 trivial."""
    return services.catalog.criticalities()


@router.get("/event/source")
async def event_sources(services: ServicesDep, _: EventReader) -> list[dict[str, Any]]:
    return services.catalog.sources()


@router.get("/event/moniker")
async def event_monikers(services: ServicesDep, _: EventReader) -> list[dict[str, Any]]:
    """Stacuity monikers, each with its scope and the Herald type it maps to."""
    return [
        {"moniker": m.moniker, "name": m.name, "scope": m.scope.value, "type_id": m.type_id}
        for m in services.catalog.monikers()
    ]
