"""The app factory: ``create_app(settings)`` builds the API; its lifespan owns the store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from herald import __version__, maintenance
from herald.api import openapi
from herald.api.limits import BodySizeLimit
from herald.api.methods import ConsoleMount
from herald.api.nul import RefuseNul
from herald.api.problems import install_problem_handlers
from herald.api.ratelimit import RateLimit
from herald.api.routes import auth, catalog, devices, events, health
from herald.api.routes import handlers as handler_routes
from herald.api.routes import ingest as ingest_routes
from herald.api.routes import metrics as metrics_routes
from herald.api.routes import onece as onece_routes
from herald.api.routes import rejected as rejected_routes
from herald.api.routes import rules as rule_routes
from herald.api.routes import stats as stats_routes
from herald.api.routes import stream as stream_routes
from herald.api.routes import usage as usage_routes
from herald.background import followers_running
from herald.config import Settings
from herald.console import STATIC_DIR
from herald.services import Services, running_services
from herald.simulate.demo import run_demo

API_PREFIX = "/api/v1"


def _background(services: Services) -> list[asyncio.Task[None]]:
    """The app's loops (each survives any failure, its health in /ready and /metrics)."""
    tasks = maintenance.upkeep(services)
    if services.settings.demo:
        tasks.append(run_demo(services))
    return [asyncio.create_task(task) for task in tasks]


@contextlib.asynccontextmanager
async def _running(app: FastAPI, services: Services) -> AsyncIterator[None]:
    """The API's background work over open services: its loops and the log's followers
    (delivery if enabled, device state, rules); the loops and the live feed stop on leaving."""
    background = _background(services)
    try:
        async with followers_running(services):
            yield
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await stream_routes.close_live_feed(app)


def create_app(settings: Settings | None = None) -> FastAPI:
    """A Herald API app; the store opens when the app starts and closes when it stops."""
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running_services(settings) as services:
            app.state.services = services
            async with _running(app, services):
                yield

    app = FastAPI(
        title="Herald",
        version=__version__,
        summary="Events of IoT connectivity: ingest, store, query and stream.",
        openapi_url="/api/openapi.json",
        docs_url=None,  # openapi.install_docs: Swagger UI from Herald, not from a CDN
        redoc_url=None,
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    openapi.install(app)
    openapi.install_docs(app)
    app.add_middleware(RefuseNul)  # inside the size limit: it reads bounded bodies whole
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.state.rate_limit = RateLimit(settings.rate_limit_per_second, settings.rate_limit_burst)
    # before events: /event/stream and /event/stats must win over /event/{event_id}
    for routes in (stream_routes, stats_routes):
        app.include_router(routes.router, prefix=API_PREFIX)
    for module in (auth, catalog, events):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(ingest_routes.router, prefix=API_PREFIX)
    app.include_router(rejected_routes.router, prefix=API_PREFIX)
    app.include_router(handler_routes.router, prefix=API_PREFIX)
    app.include_router(rule_routes.router, prefix=API_PREFIX)
    app.include_router(devices.router, prefix=API_PREFIX)
    app.include_router(usage_routes.router, prefix=API_PREFIX)
    app.include_router(onece_routes.router)  # 1NCE's paths under /1nce/management-api
    app.include_router(health.router)
    app.include_router(metrics_routes.router)
    app.router.routes.append(  # last
        ConsoleMount("/", StaticFiles(directory=STATIC_DIR, html=True), name="console")
    )
    return app
