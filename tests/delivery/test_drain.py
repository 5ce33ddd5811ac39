"""Stopping delivery drains: the requests out finish and are recorded (for a bounded time),
the handlers that only wait stop at once. A real store (both backends), a real receiver."""

from __future__ import annotations

import asyncio
import threading
import time

from herald.catalog import load_catalog
from herald.config import Settings
from herald.delivery.signing import new_secret
from herald.delivery.worker import DeliveryWorker
from herald.handlers.types import HandlerSpec
from herald.ids import IdGenerator
from herald.store import Store
from tests.delivery.receiver import Received, Responder, receiving
from tests.delivery.test_worker import append, attempts
from tests.support.waiting import wait_until


def slow_receiver(
    seconds: float, release: threading.Event | None = None
) -> tuple[threading.Event, Responder]:
    """A receiver that answers after ``seconds`` (sooner once ``release`` is set)."""
    arrived = threading.Event()

    def answer(_: Received) -> tuple[int, dict[str, str]]:
        arrived.set()
        (release or threading.Event()).wait(seconds)
        return 200, {}

    return arrived, answer


async def stop_while_sending(store: Store, arrived: threading.Event, drain_seconds: float) -> float:
    """Run the worker, stop it once the request is out; how long stopping took."""
    settings = Settings(
        allow_private_targets=True,
        delivery_retry_schedule="30",
        delivery_drain_seconds=drain_seconds,
    )
    delivery = DeliveryWorker(store, settings, load_catalog(), IdGenerator(2))
    running = asyncio.create_task(delivery.run())
    try:
        await asyncio.to_thread(arrived.wait, 60)
        asked = time.monotonic()
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        return time.monotonic() - asked
    finally:
        await delivery.aclose()


def test_stopping_lets_the_request_out_finish_and_records_it(store: Store) -> None:
    arrived, answer = slow_receiver(1.0)
    with receiving(answer) as receiver:
        handler = store.handlers.create(2, HandlerSpec(name="h", url=receiver.url), new_secret())
        store.organisations.create("Quiet", 3)  # its handler waits for events: stopped at once
        store.handlers.create(3, HandlerSpec(name="q", url=receiver.url + "/q"), new_secret())
        [event_id] = append(store, 1)
        took = asyncio.run(stop_while_sending(store, arrived, drain_seconds=30))
        assert receiver.answered == [200]
    # the request's second, not the 30 s drain (the waiting handler stopped at once)
    assert 0.5 < took < 15, f"stopping took {took:.1f} s"
    [attempt] = attempts(store, handler.id)
    assert (attempt.outcome, attempt.event_ids) == ("delivered", (event_id,))
    stored = store.handlers.get(handler.id)
    assert stored is not None and stored.cursor_seq > handler.cursor_seq
    assert stored.owner is None  # the lease was given up after the drain


def test_draining_is_bounded(store: Store) -> None:
    release = threading.Event()
    arrived, answer = slow_receiver(60.0, release)
    with receiving(answer) as receiver:
        handler = store.handlers.create(2, HandlerSpec(name="h", url=receiver.url), new_secret())
        append(store, 1)
        took = asyncio.run(stop_while_sending(store, arrived, drain_seconds=0.5))
        release.set()  # the receiver answers now, to a sender that is gone
        wait_until(lambda: bool(receiver.answered), 10)
    assert took < 15, f"stopping took {took:.1f} s"  # the 0.5 s drain, not the 60 s answer
    assert attempts(store, handler.id) == []  # cut off: not recorded, so delivered again
