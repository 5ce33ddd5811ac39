"""The thread pools blocking calls run on: plain, and fair between organisations."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from herald.threads import FairThreads, Threads

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


def test_fair_threads_start_waiting_work_round_robin_by_organisation() -> None:
    """One organisation's queued work does not sit in front of another's: with the one
    thread busy, A queues three calls and B one after them; B's goes second."""
    threads = FairThreads("herald-fair", 1)
    release = threading.Event()
    started: list[str] = []

    def work(name: str) -> str:
        started.append(name)
        if name == "a0":
            release.wait(5)
        return name

    async def scenario() -> list[str]:
        first = asyncio.ensure_future(threads.run(1, work, "a0"))
        while not started:
            await asyncio.sleep(0.001)
        queued = [asyncio.ensure_future(threads.run(1, work, f"a{n}")) for n in (1, 2, 3)]
        queued.append(asyncio.ensure_future(threads.run(2, work, "b1")))
        await asyncio.sleep(0)
        assert threads.waiting == 4
        release.set()
        answers = await asyncio.gather(first, *queued)
        await threads.aclose()
        return answers

    answers = asyncio.run(scenario())
    assert answers == ["a0", "a1", "a2", "a3", "b1"]  # each caller gets its own answer
    assert started == ["a0", "a1", "b1", "a2", "a3"]


def test_a_waiting_call_cancelled_leaves_the_queue_and_its_thread_goes_on() -> None:
    threads = FairThreads("herald-fair", 1)
    release = threading.Event()
    started: list[str] = []

    def work(name: str) -> str:
        started.append(name)
        if name == "busy":
            release.wait(5)
        return name

    async def scenario() -> str:
        busy = asyncio.ensure_future(threads.run(1, work, "busy"))
        while not started:
            await asyncio.sleep(0.001)
        gone = asyncio.ensure_future(threads.run(2, work, "gone"))
        await asyncio.sleep(0)
        gone.cancel()  # its client hung up while it waited
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert threads.waiting == 0
        release.set()
        await busy
        answer = await threads.run(3, work, "next")  # the thread was handed back
        await threads.aclose()
        return answer

    assert asyncio.run(scenario()) == "next"
    assert started == ["busy", "next"]  # the cancelled call never ran
