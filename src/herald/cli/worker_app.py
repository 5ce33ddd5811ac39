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
from herald.background import followers_running
from herald.config import Settings
from herald.services import running_services


def create_worker_app(settings: Settings) -> FastAPI:
    """A worker: delivery, device state and rules, with its health and metrics endpoints."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running_services(settings) as services:
            app.state.services = services
            async with followers_running(services, mode="worker"):
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
