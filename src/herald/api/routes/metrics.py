"""``GET /metrics``: the process' metrics in Prometheus' text format.

Metrics are process-wide, across tenants, so a tenant's token may not read them: the scrape
sends ``HERALD_METRICS_TOKEN`` or a platform (internal) token, unless the operator opened the
endpoint with ``HERALD_METRICS_PUBLIC``.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials
from starlette.responses import Response

from herald import metrics
from herald.api.deps import ServicesDep, bearer, get_principal
from herald.api.problems import Problem

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
async def prometheus_metrics(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Response:
    """Counters and histograms for Prometheus (``HERALD_METRICS_TOKEN`` or an internal token)."""
    if not services.settings.metrics_public:
        expected = services.settings.metrics_token
        sent = credentials.credentials if credentials else ""
        if not (expected and hmac.compare_digest(sent.encode(), expected.encode())):
            principal = await get_principal(request, services, credentials)
            if not principal.internal:
                raise Problem(
                    403,
                    "Forbidden",
                    "metrics span every tenant: send HERALD_METRICS_TOKEN or an internal token",
                )
    return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)
