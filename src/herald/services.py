"""What a server process's work needs (the API's routes, the worker's loops): the store,
the catalogue, ids, the writer, and the threads that run blocking work; built once per
process by ``running_services``."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from herald.audit import AuditLog
from herald.auth import Authenticator, Principal, jwt_secret
from herald.catalog import Catalog, load_catalog
from herald.config import Settings
from herald.events.query_slots import QuerySlots
from herald.events.writer import EventWriter
from herald.ids import IdGenerator
from herald.loops import Loops
from herald.organisations.budget import EventBudgets
from herald.organisations.types import Organisation
from herald.sealing import SecretBox, load_box, seal_stored_secrets
from herald.store import Store, StoreError, open_store
from herald.threads import FairThreads, Threads

T = TypeVar("T")
log = logging.getLogger("herald")

ORGANISATION_CACHE_SECONDS = 5.0
ORGANISATION_CACHE_SIZE = 10_000
STORE_THREADS = 40  # as many as anyio's default limiter allowed before
THREAD_NAME_PREFIX = "herald-store"
COMPUTE_THREADS = 2  # the GIL runs one at a time; two let one wait on a cache miss
WRITE_THREADS = 4  # appends at once: PostgreSQL's best rate (SQLite's take turns anyway)
QUERY_THREADS = 32  # tenants' queries at once (each organisation's bounded by query_slots)


@dataclass
class Services:
    settings: Settings
    store: Store
    auth: Authenticator
    catalog: Catalog
    ids: IdGenerator
    audit: AuditLog
    secret_box: SecretBox  # seals and opens handler secrets
    writer: EventWriter = field(init=False)
    query_slots: QuerySlots = field(init=False)
    budgets: EventBudgets = field(init=False)
    testing: set[int] = field(default_factory=set)  # handlers whose test send is out
    loops: Loops = field(default_factory=Loops)
    _organisations: dict[int, tuple[float, Organisation]] = field(default_factory=dict)
    _threads: Threads = field(
        default_factory=lambda: Threads(THREAD_NAME_PREFIX, STORE_THREADS), repr=False
    )
    # In front of the CPU work and the store's writes and queries, waiting work is started
    # round-robin by organisation: one tenant's queue does not sit in front of the others'.
    _compute: FairThreads = field(
        default_factory=lambda: FairThreads("herald-compute", COMPUTE_THREADS), repr=False
    )
    _writes: FairThreads = field(
        default_factory=lambda: FairThreads("herald-write", WRITE_THREADS), repr=False
    )
    _queries: FairThreads = field(
        default_factory=lambda: FairThreads("herald-query", QUERY_THREADS), repr=False
    )

    def __post_init__(self) -> None:
        self.writer = EventWriter(self.store, self.ids, self.catalog)
        self.query_slots = QuerySlots(self.settings.queries_per_organisation)
        self.budgets = EventBudgets.from_settings(self.settings)

    async def run(self, work: Callable[..., T], *args: object) -> T:
        """Run blocking store work in one of the services' threads, off the event loop."""
        return await self._threads.run(work, *args)

    async def compute(
        self, work: Callable[..., T], *args: object, organisation: int | None = None
    ) -> T:
        """Run a request's CPU work (parsing, validating and building a batch of events)
        off the event loop: on the loop, one tenant's batch of 1,000 events would hold up
        every other request for the tens of milliseconds it takes. Threads of its own, so
        that it neither waits behind the store's calls nor takes their threads; waiting
        work starts in turn by ``organisation``."""
        return await self._compute.run(organisation, work, *args)

    async def write(self, organisation: int | None, work: Callable[..., T], *args: object) -> T:
        """Run a write of ``organisation``'s (an append) on the write threads, waiting
        work started in turn by organisation."""
        return await self._writes.run(organisation, work, *args)

    def charge(self, principal: Principal, organisation_id: int, events: int, size: int) -> None:
        """Take a write of ``events`` in a body of ``size`` bytes from the organisation's
        event budget; the error (``RetryLater`` or ``Invalid``) that refuses it when over. A
        platform token's writes are not counted. Blocking (the organisation may be read): off the
        loop, e.g. in ``compute``."""
        if principal.internal:
            return
        budget = self.budgets.budget(self.organisation(organisation_id))
        self.budgets.charge(organisation_id, budget, events, size)

    async def query(self, principal: Principal, work: Callable[..., T], *args: object) -> T:
        """A tenant's query (its time limit set by the caller), within its organisation's
        share of the store threads (``query_slots``)."""
        organisation = None if principal.internal else principal.organisation_id
        return await self.query_slots.run(
            organisation, lambda: self._queries.run(organisation, work, *args)
        )

    async def close(self) -> None:
        """Refuse new work and wait for the running work to finish (before the store closes)."""
        await self._compute.aclose()
        await self._queries.aclose()
        await self._writes.aclose()
        await self._threads.aclose()

    def organisation(self, organisation_id: int) -> Organisation | None:
        """An organisation by id, cached for a few seconds: its retention may change (by
        ``herald org retention`` in another process)."""
        now = time.monotonic()
        cached = self._organisations.get(organisation_id)
        if cached is not None and now - cached[0] < ORGANISATION_CACHE_SECONDS:
            return cached[1]
        known = self.store.organisations.get(organisation_id)
        if known is not None:
            if len(self._organisations) >= ORGANISATION_CACHE_SIZE:
                self._organisations.clear()
            self._organisations[organisation_id] = (now, known)
        return known


def build_services(settings: Settings, store: Store) -> Services:
    """The services a server process needs, over an open store."""
    catalog = load_catalog()
    ids = IdGenerator(lambda: store.nodes.lease(settings.node_id))
    try:  # lease now, so that a lost lease shows from the start
        log.info("event ids: node id %d", ids.node_id)
    except StoreError as exc:  # a read-only database: the server still serves reads
        log.warning("no node id leased yet (%s); writes answer 503 until one is", exc)
    audit = AuditLog(store, catalog, ids, enabled=settings.audit_events)
    return Services(
        settings=settings,
        store=store,
        auth=Authenticator(
            store,
            jwt_secret(store, settings.jwt_secret),
            settings.jwt_ttl_seconds,
            on_failure=audit.auth_failed,
        ),
        catalog=catalog,
        ids=ids,
        audit=audit,
        secret_box=load_box(settings),
    )


@contextlib.asynccontextmanager
async def running_services(settings: Settings) -> AsyncIterator[Services]:
    """The store opened and the services built over it (handler secrets sealed) for as long
    as the block lasts; on leaving, running store work finishes, then the store closes."""
    store = open_store(
        settings.database_url,
        sqlite_synchronous=settings.sqlite_synchronous,
        retention_days=settings.retention_days,
    )
    try:
        services = build_services(settings, store)
        seal_stored_secrets(store, services.secret_box)
        try:
            yield services
        finally:  # cancelled callers leave their store work running: let it finish first
            await services.close()
    finally:
        store.close()
