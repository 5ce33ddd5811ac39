"""What every request handler needs, built once per app by the lifespan."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from herald.audit import AuditLog
from herald.auth import Authenticator
from herald.catalog import Catalog
from herald.config import Settings
from herald.ids import IdGenerator
from herald.store import Organisation, Store
from herald.threads import Threads
from herald.writer import EventWriter

T = TypeVar("T")

STORE_THREADS = 40  # as many as anyio's default limiter allowed before
THREAD_NAME_PREFIX = "herald-store"


@dataclass
class Services:
    settings: Settings
    store: Store
    auth: Authenticator
    catalog: Catalog
    ids: IdGenerator
    audit: AuditLog
    writer: EventWriter = field(init=False)
    _organisations: dict[int, Organisation] = field(default_factory=dict)
    _threads: Threads = field(
        default_factory=lambda: Threads(THREAD_NAME_PREFIX, STORE_THREADS), repr=False
    )

    def __post_init__(self) -> None:
        self.writer = EventWriter(self.store, self.ids)

    async def run(self, work: Callable[..., T], *args: object) -> T:
        """Run blocking store work in one of the services' threads, off the event loop."""
        return await self._threads.run(work, *args)

    async def close(self) -> None:
        """Refuse new work and wait for the running work to finish (before the store closes)."""
        await self._threads.aclose()

    def organisation(self, organisation_id: int) -> Organisation | None:
        """An organisation by id (cached: organisations are created, never renamed)."""
        known = self._organisations.get(organisation_id)
        if known is None:
            known = self.store.get_organisation(organisation_id)
            if known is not None:
                self._organisations[organisation_id] = known
        return known
