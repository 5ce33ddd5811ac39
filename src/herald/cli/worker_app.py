"""The app ``herald worker`` serves on a port of its own: ``/health``, ``/ready`` and
``/metrics`` (protected as the API's are), while its lifespan runs the delivery worker and
the device-state projector (``HERALD_DEVICE_STATE_ENABLED``, as in ``herald serve``) and the
rules evaluator (``HERALD_RULES_ENABLED``).

Run by uvicorn, the worker stops as ``herald serve`` does on SIGTERM or Ctrl-C: the lifespan
ends, and with it delivery, which lets the requests out finish first.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from herald import __version__
from herald.api.problems import install_problem_handlers
from herald.api.routes import health
from herald.api.routes import metrics as metrics_routes
from herald.config import Settings
from herald.delivery.worker import in_process as delivery_in_process
from herald.devices.projector import in_process as devices_in_process
from herald.rules.evaluator import in_process as rules_in_process
from herald.services import running_services


def create_worker_app(settings: Settings) -> FastAPI:
    """A delivery worker (and device-state projector) with its health and metrics endpoints."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running_services(settings) as services:
            app.state.services = services
            async with (
                delivery_in_process(
                    services.store,
                    settings,
                    services.catalog,
                    services.ids,
                    services.secret_box,
                    services.loops,
                    mode="worker",
                ),
                devices_in_process(
                    services.store,
                    settings.device_state_poll_seconds,
                    services.loops,
                    enabled=settings.device_state_enabled,
                    catalog=services.catalog,
                    ids=services.ids,
                ),
                rules_in_process(
                    services.store,
                    services.catalog,
                    services.ids,
                    services.loops,
                    poll_seconds=settings.rules_poll_seconds,
                    max_groups=settings.max_groups_per_rule,
                    enabled=settings.rules_enabled,
                ),
            ):
                yield

    app = FastAPI(
        title="Herald worker",
        version=__version__,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(metrics_routes.router)
    return app
