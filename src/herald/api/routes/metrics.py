"""``GET /metrics``: the process' metrics in Prometheus' text format."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Header
from starlette.responses import Response

from herald import metrics
from herald.api.deps import ServicesDep
from herald.api.problems import Problem

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
async def prometheus_metrics(
    services: ServicesDep, authorization: Annotated[str | None, Header()] = None
) -> Response:
    """Counters and histograms for Prometheus; ``HERALD_METRICS_TOKEN`` guards it if set."""
    expected = services.settings.metrics_token
    if expected and not hmac.compare_digest(
        (authorization or "").encode(), f"Bearer {expected}".encode()
    ):
        raise Problem(
            401,
            "Unauthorized",
            "send Authorization: Bearer <HERALD_METRICS_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)
