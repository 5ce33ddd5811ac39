"""Blocking work (the store's calls) run off the event loop, on a thread pool of its own.

A plain executor rather than ``anyio.to_thread``: no capacity limiter and no worker protocol
per call, tens of µs less on each store call, which the API and the delivery worker make
on every request.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

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
