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
async def ready(services: ServicesDep) -> dict[str, str]:
    """The process can reach its database."""
    try:
        await services.run(services.store.last_seq)
    except StoreError as exc:
        raise Problem(503, "Not ready", "the database is not reachable") from exc
    return {"status": "ready"}
