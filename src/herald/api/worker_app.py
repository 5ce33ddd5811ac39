"""The app ``herald worker`` serves on a port of its own: ``/health``, ``/ready`` and
``/metrics`` (protected as the API's are), while its lifespan runs the delivery worker.

Run by uvicorn, the worker stops as ``herald serve`` does on SIGTERM or Ctrl-C: the lifespan
ends, and with it delivery, which lets the requests out finish first.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from herald import __version__
from herald.api.app import build_services
from herald.api.problems import install_problem_handlers
from herald.api.routes import health
from herald.api.routes import metrics as metrics_routes
from herald.config import Settings
from herald.delivery.worker import in_process as delivery_in_process
from herald.sealing import seal_stored_secrets
from herald.store import open_store


def create_worker_app(settings: Settings) -> FastAPI:
    """A delivery worker with its health and metrics endpoints."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = open_store(
            settings.database_url,
            sqlite_synchronous=settings.sqlite_synchronous,
            retention_days=settings.retention_days,
        )
        services = build_services(settings, store)
        app.state.services = services
        seal_stored_secrets(store, services.secret_box)
        try:
            async with delivery_in_process(
                store,
                settings,
                services.catalog,
                services.ids,
                services.secret_box,
                services.loops,
                mode="worker",
            ):
                yield
        finally:
            try:
                await services.close()
            finally:
                store.close()

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
