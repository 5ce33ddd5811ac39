"""What every request handler needs, built once per app by the lifespan."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from herald.audit import AuditLog
from herald.auth import Authenticator
from herald.catalog import Catalog
from herald.config import Settings
from herald.ids import IdGenerator
from herald.store import Organisation, Store

T = TypeVar("T")

STORE_THREADS = 40  # as many as anyio's default limiter allowed before
THREAD_NAME_PREFIX = "herald-store"


def _store_threads() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=STORE_THREADS, thread_name_prefix=THREAD_NAME_PREFIX)


@dataclass
class Services:
    settings: Settings
    store: Store
    auth: Authenticator
    catalog: Catalog
    ids: IdGenerator
    audit: AuditLog
    _organisations: dict[int, Organisation] = field(default_factory=dict)
    _executor: ThreadPoolExecutor = field(default_factory=_store_threads, repr=False)

    async def run(self, work: Callable[..., T], *args: object) -> T:
        """Run blocking store work in one of the services' threads, off the event loop.

        A plain executor hand-off: anyio's ``to_thread.run_sync`` (a capacity limiter and
        its own worker protocol) cost tens of µs more per call. The caller's context
        variables go along, as they did with anyio. Cancelling the caller does not stop
        work already running; ``close`` waits for it.
        """
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, functools.partial(context.run, work, *args)
        )

    async def close(self) -> None:
        """Refuse new work and wait for the running work to finish (before the store closes)."""
        self._executor.shutdown(wait=False)
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)

    def organisation(self, organisation_id: int) -> Organisation | None:
        """An organisation by id (cached: organisations are created, never renamed)."""
        known = self._organisations.get(organisation_id)
        if known is None:
            known = self.store.get_organisation(organisation_id)
            if known is not None:
                self._organisations[organisation_id] = known
        return known
