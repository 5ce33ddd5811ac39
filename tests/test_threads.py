"""The thread pool blocking store calls run on."""

from __future__ import annotations

import asyncio
import threading

import pytest

from herald.threads import Threads


def test_work_runs_in_the_pools_named_threads_off_the_loop() -> None:
    threads = Threads("herald-test", 2)

    async def scenario() -> tuple[str, str]:
        loop_thread = threading.current_thread().name
        return loop_thread, await threads.run(lambda: threading.current_thread().name)

    try:
        loop_thread, work_thread = asyncio.run(scenario())
    finally:
        threads.close()
    assert work_thread.startswith("herald-test") and work_thread != loop_thread


def test_close_waits_for_running_work_and_refuses_more() -> None:
    threads = Threads("herald-test", 1)
    started, finished = threading.Event(), threading.Event()

    def slow() -> None:
        started.set()
        finished.wait(5)

    async def scenario() -> None:
        running = asyncio.ensure_future(threads.run(slow))
        await asyncio.to_thread(started.wait, 5)
        threading.Timer(0.05, finished.set).start()
        await asyncio.to_thread(threads.close)
        assert finished.is_set()  # close() returned only after the running call ended
        await running
        with pytest.raises(RuntimeError):
            await threads.run(slow)

    asyncio.run(scenario())
