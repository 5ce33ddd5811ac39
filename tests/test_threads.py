"""The thread pool blocking store calls run on."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from herald.threads import Threads

REQUEST = contextvars.ContextVar("REQUEST", default="none")


def test_work_runs_in_the_pools_named_threads_with_the_callers_context() -> None:
    threads = Threads("herald-test", 2)

    def where() -> tuple[str, str]:
        return threading.current_thread().name, REQUEST.get()

    async def scenario() -> tuple[str, str]:
        REQUEST.set("r1")
        try:
            return await threads.run(where)
        finally:
            await threads.aclose()

    name, request = asyncio.run(scenario())
    assert name.startswith("herald-test_") and request == "r1"


def test_aclose_waits_for_running_work_and_refuses_more() -> None:
    threads = Threads("herald-test", 1)
    started, finished = threading.Event(), threading.Event()

    def slow() -> None:
        started.set()
        finished.wait(5)

    async def scenario() -> None:
        running = asyncio.ensure_future(threads.run(slow))
        await asyncio.to_thread(started.wait, 5)
        running.cancel()  # the caller goes away; its work goes on
        threading.Timer(0.05, finished.set).start()
        await threads.aclose()
        assert finished.is_set()  # aclose() returned only after the running call ended
        with pytest.raises(RuntimeError):
            await threads.run(slow)

    asyncio.run(scenario())
