"""Blocking work (the store's calls) run off the event loop, on a thread pool of its own.

A plain executor rather than ``anyio.to_thread``: no capacity limiter and no worker protocol
per call, tens of µs less on each store call, which the API and the delivery worker make
on every request.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from herald.gil import GIL_TURN_EVERY as GIL_TURN_EVERY
from herald.gil import offer_gil as offer_gil

T = TypeVar("T")


class Threads:
    """A named pool of threads for blocking calls."""

    def __init__(self, name: str, size: int) -> None:
        self._pool = ThreadPoolExecutor(size, thread_name_prefix=name)

    async def run(self, work: Callable[..., T], *args: object) -> T:
        """``work(*args)`` in one of the pool's threads, with the caller's context variables.

        Cancelling the caller does not stop work already running; ``aclose`` waits for it.
        """
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, functools.partial(context.run, work, *args)
        )

    async def aclose(self) -> None:
        """Refuse new work and wait, off the event loop, for the running work to finish."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown)


class FairThreads:
    """A pool of ``size`` threads whose waiting work is started round-robin by key (one
    organisation's): when every thread is busy, the next free one goes to the next key in
    turn, so one key's queued work never sits in front of every other key's.

    Used from one event loop; a call that finds a free thread and nobody waiting starts at
    once (the hot path: a counter and a submit).
    """

    def __init__(self, name: str, size: int) -> None:
        self._pool = ThreadPoolExecutor(size, thread_name_prefix=name)
        self._size = size
        self._running = 0  # threads held: running work, or handed to a caller about to start
        self._waiting: dict[Hashable, deque[asyncio.Future[None]]] = {}  # in turn order

    @property
    def waiting(self) -> int:
        """Calls waiting for a thread."""
        return sum(len(turns) for turns in self._waiting.values())

    async def run(self, key: Hashable, work: Callable[..., T], *args: object) -> T:
        """``work(*args)`` in one of the pool's threads, in ``key``'s turn, with the caller's
        context variables. Cancelling the caller does not stop work already running."""
        loop = asyncio.get_running_loop()
        if self._running < self._size and not self._waiting:
            self._running += 1
        else:
            await self._turn(loop, key)
        context = contextvars.copy_context()
        try:
            started = self._pool.submit(context.run, work, *args)
        except BaseException:
            self._release()
            raise
        started.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release))
        return await asyncio.wrap_future(started)

    async def _turn(self, loop: asyncio.AbstractEventLoop, key: Hashable) -> None:
        """Wait until a thread is handed to this call (in its key's turn)."""
        turn: asyncio.Future[None] = loop.create_future()
        self._waiting.setdefault(key, deque()).append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # handed a thread as the caller went away: pass it on
            else:
                turns = self._waiting.get(key)
                if turns is not None and turn in turns:
                    turns.remove(turn)
                    if not turns:
                        del self._waiting[key]
            raise

    def _release(self) -> None:
        """A thread is free: hand it to the next key in turn, or count it free."""
        while self._waiting:
            key = next(iter(self._waiting))
            turns = self._waiting.pop(key)
            turn = turns.popleft()
            if turns:
                self._waiting[key] = turns  # to the back of the round
            if not turn.done():
                turn.set_result(None)
                return
        self._running -= 1

    async def aclose(self) -> None:
        """Refuse new work, cancel the waiting calls and wait, off the event loop, for the
        running work to finish."""
        for turns in self._waiting.values():
            for turn in turns:
                turn.cancel()
        self._waiting.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown)
