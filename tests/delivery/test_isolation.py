"""One tenant's hostile receivers cannot hold delivery: a deadline on the whole request, a
share of the connection pool per organisation, and deleting a handler cancels its request.
Each over a real store (both backends) and real loopback servers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from herald.catalog import load_catalog
from herald.config import Settings
from herald.delivery.signing import new_secret
from herald.delivery.worker import DeliveryWorker
from herald.handlers.types import HandlerSpec
from herald.ids import IdGenerator
from herald.store import Store, open_store
from tests.delivery.receiver import receiving, trickling
from tests.delivery.test_worker import append, attempts
from tests.support.waiting import wait_until

A, B = 2, 3  # two tenants


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = open_store(database_url, sqlite_synchronous="NORMAL")
    opened.organisations.create("Acme", A)
    opened.organisations.create("Bolt", B)
    try:
        yield opened
    finally:
        opened.close()


def settings(**changes: object) -> Settings:
    return Settings(
        allow_private_targets=True,
        delivery_retry_schedule="30",
        delivery_lease_seconds=1.5,  # renews (and notices deletions) every 0.5 s
        **changes,
    )


def test_the_timeout_bounds_the_whole_request_not_each_read(store: Store) -> None:
    """A receiver answering a byte every 0.5 s (40 bytes: 20 s) never lets a read wait
    longer than the timeout; the request still ends at the 2 s deadline, as a failed,
    logged, backed-off attempt (well before 20 s, however loaded the machine)."""
    with trickling(0.5) as trickler:
        handler = store.handlers.create(A, HandlerSpec(name="slow", url=trickler.url), new_secret())
        [event_id] = append(store, 1, organisation_id=A)

        async def scenario() -> float:
            delivery = DeliveryWorker(
                store, settings(delivery_timeout_seconds=2.0), load_catalog(), IdGenerator(2)
            )
            try:
                await delivery.leases.claim()
                started = time.monotonic()
                result = await delivery.step(handler.id)
                assert result.kind == "retry"
                return time.monotonic() - started
            finally:
                await delivery.aclose()

        took = asyncio.run(scenario())
    assert took < 12, f"the request lasted {took:.1f} s"
    [attempt] = attempts(store, handler.id)
    assert (attempt.outcome, attempt.error, attempt.event_ids) == ("retry", "timeout", (event_id,))
    assert attempt.latency_ms < 12_000
    stored = store.handlers.get(handler.id)
    assert stored is not None and stored.failures == 1 and stored.next_attempt_ms is not None


def test_one_tenants_trickling_receivers_do_not_starve_another_tenant(store: Store) -> None:
    """Tenant A has six handlers on a trickling receiver; the pool has four connections and
    each organisation two. Tenant B's healthy handler still delivers at once, with no failed
    attempt (without the per-organisation share, A's requests held every pooled connection
    and B's request timed out waiting for one)."""
    config = settings(
        delivery_timeout_seconds=10.0,
        delivery_max_connections=4,
        delivery_connections_per_organisation=2,
    )
    with trickling(0.25) as trickler, receiving() as healthy:
        for number in range(6):
            spec = HandlerSpec(name=f"slow {number}", url=trickler.url)
            store.handlers.create(A, spec, new_secret())
        b_handler = store.handlers.create(B, HandlerSpec(name="b", url=healthy.url), new_secret())
        append(store, 1, organisation_id=A)

        async def scenario() -> float:
            delivery = DeliveryWorker(store, config, load_catalog(), IdGenerator(2))
            running = asyncio.create_task(delivery.run())
            try:
                await asyncio.to_thread(wait_until, lambda: trickler.open >= 2, 10)
                await asyncio.sleep(0.3)  # A's other handlers queue for their turn
                [b_event] = await asyncio.to_thread(append, store, 1, B)
                sent = time.monotonic()
                await asyncio.to_thread(wait_until, lambda: b_event in healthy.delivered_ids(), 10)
                late = time.monotonic() - sent
                # the attempt is recorded just after the answer: wait for it before stopping
                await asyncio.to_thread(wait_until, lambda: bool(attempts(store, b_handler.id)), 10)
                return late
            finally:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
                await delivery.aclose()

        late = asyncio.run(scenario())
    assert late < 5, f"tenant B's event came {late:.1f} s late"
    assert [a.outcome for a in attempts(store, b_handler.id)] == ["delivered"]
    assert trickler.held() <= 2  # A never held more than its share


def test_deleting_a_handler_cancels_its_request_in_flight(store: Store) -> None:
    with trickling(0.5) as trickler:  # 20 s for the whole answer, were it waited for
        handler = store.handlers.create(A, HandlerSpec(name="slow", url=trickler.url), new_secret())
        append(store, 1, organisation_id=A)

        async def scenario() -> float:
            config = settings(delivery_timeout_seconds=30.0)
            delivery = DeliveryWorker(store, config, load_catalog(), IdGenerator(2))
            running = asyncio.create_task(delivery.run())
            try:
                await asyncio.to_thread(wait_until, lambda: trickler.requests == 1, 10)
                deleted = time.monotonic()
                await asyncio.to_thread(store.handlers.delete, handler.id, (A,))
                await asyncio.to_thread(wait_until, lambda: bool(trickler.ended), 10)
                return trickler.ended[0] - deleted
            finally:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
                await delivery.aclose()

        closed_after = asyncio.run(scenario())
    assert closed_after < 10, f"the request stayed open {closed_after:.1f} s after the delete"
