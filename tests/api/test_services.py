"""``Services.run``: store work on the services' own threads, finished before the store closes."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from fastapi import FastAPI

from herald.api.app import create_app
from herald.api.routes.stream import Live
from herald.auth import Principal
from herald.config import Settings
from herald.live.feed import LogFeed, Subscription
from herald.live.guard import StreamGuard
from herald.live.resume import ResumeTokens
from herald.query.filter import EventFilter
from herald.services import THREAD_NAME_PREFIX, Services

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


@asynccontextmanager
async def running(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, Services]]:
    """An app through its real lifespan, on a fresh SQLite file."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'herald.db'}", demo=False, delivery_enabled=False
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app, app.state.services


def test_work_runs_on_the_store_threads_with_the_callers_context(tmp_path: Path) -> None:
    def where(tag: str) -> tuple[str, str, str]:
        return threading.current_thread().name, request_id.get(), tag

    async def scenario() -> None:
        async with running(tmp_path) as (_, services):
            request_id.set("r-17")
            name, seen, tag = await services.run(where, "args pass")
            assert name.startswith(f"{THREAD_NAME_PREFIX}_") and name != "MainThread"
            assert (seen, tag) == ("r-17", "args pass")
            # store work goes the same way, and its errors reach the caller
            assert await services.run(services.store.log.last_seq) == 0
            with pytest.raises(ZeroDivisionError):
                await services.run(divmod, 1, 0)

    asyncio.run(scenario())


def test_shutdown_waits_for_running_work_then_closes_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller cancelled mid-work (as the lifespan cancels the purge loop) leaves the work
    running on its thread: the store must not close under it."""
    order: list[str] = []
    started, release = threading.Event(), threading.Event()

    def slow_store_work() -> None:
        started.set()
        release.wait(10)
        order.append("work finished")

    async def scenario() -> Services:
        async with running(tmp_path) as (_, services):
            real_close = services.store.close

            def close() -> None:
                order.append("store closed")
                real_close()

            monkeypatch.setattr(services.store, "close", close)
            caller = asyncio.create_task(services.run(slow_store_work))
            while not started.is_set():
                await asyncio.sleep(0.005)
            caller.cancel()
            with pytest.raises(asyncio.CancelledError):
                await caller
            assert order == []  # the caller is gone, the work is not
            threading.Timer(0.3, release.set).start()  # still blocked as the app stops
        return services

    services = asyncio.run(scenario())
    assert order == ["work finished", "store closed"]

    async def after_shutdown() -> None:
        with pytest.raises(RuntimeError, match="shutdown"):
            await services.run(lambda: None)

    asyncio.run(after_shutdown())


def test_shutdown_stops_the_live_feed_before_the_threads_close(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as (app, services):
            feed = LogFeed(services.store, services.run, lambda e, s: e.body, interval=60)
            guard = StreamGuard(
                services.auth.authenticate,
                services.run,
                per_token=1,
                per_organisation=1,
                recheck_seconds=60,
            )
            app.state.live = Live(feed, guard, ResumeTokens("secret"))
            subscription = Subscription(EventFilter(), capacity=10, scope=None)
            guard.admit(subscription, Principal(1, None, frozenset(), internal=True), "t")
            await feed.subscribe(subscription)
            polling, checking = feed._task, guard._task
            await asyncio.sleep(0.2)  # its first read done, the feed sleeps out its interval
            assert polling is not None and not polling.done()
            assert checking is not None and not checking.done()
        assert polling.cancelled()  # not left polling a closed pool and store
        assert checking.cancelled()

    asyncio.run(scenario())
