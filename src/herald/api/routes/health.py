"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter

from herald.api.deps import ServicesDep
from herald.api.problems import Problem
from herald.store import StoreError

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(services: ServicesDep) -> dict[str, object]:
    """The process can reach its database and write events (503 otherwise); ``loops``
    shows each background loop's health (``status`` is ``degraded`` while one fails)."""
    try:
        await services.run(services.store.log.last_seq)
    except StoreError as exc:
        raise Problem(503, "Not ready", "the database is not reachable") from exc
    if (refusal := services.store.nodes.refusal()) is not None:
        raise Problem(503, "Not ready", refusal)
    status = "degraded" if services.loops.failing() else "ready"
    return {"status": status, "loops": services.loops.report()}
