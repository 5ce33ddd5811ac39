"""Idle handlers cost nothing: a handler whose organisation gets no events it may want is
not woken, makes no store call of its own, and its cursor follows the log in one write for
all of them. Over a real store (both backends) and a real loopback receiver."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, cast

from herald.catalog import load_catalog
from herald.config import Settings
from herald.delivery.signing import new_secret
from herald.delivery.worker import DeliveryWorker
from herald.handlers.types import HandlerSpec
from herald.ids import IdGenerator
from herald.store import Store
from tests.delivery.receiver import receiving
from tests.delivery.test_worker import append
from tests.support.waiting import wait_until

BUSY, IDLE, PICKY = 2, 3, 4  # organisations
IDLE_HANDLERS = 25


class CountingStore:
    """The store, with every call and its arguments written down."""

    def __init__(
        self,
        store: Store | Any,
        calls: list[tuple[str, tuple[Any, ...]]] | None = None,
        prefix: str = "",
    ) -> None:
        self._store = store
        self.calls: list[tuple[str, tuple[Any, ...]]] = [] if calls is None else calls
        self._prefix = prefix

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if name in ("handlers", "log"):  # the repositories' calls, as "handlers.get"...
            return CountingStore(attribute, self.calls, f"{name}.")
        if not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((self._prefix + name, args))
            return attribute(*args, **kwargs)

        return counted

    def calls_for(self, organisation_id: int, handler_ids: set[int]) -> list[str]:
        """The calls made on behalf of an organisation's handlers."""
        return [
            name
            for name, args in list(self.calls)
            if (name == "log.scan" and args[2:3] == ((organisation_id,),))
            or (
                name in ("handlers.get", "handlers.pending_replays")
                and args[:1] in {(h,) for h in handler_ids}
            )
            or (
                name in ("handlers.advance_cursor", "handlers.record_delivery")
                and _handler_of(name, args) in handler_ids
            )
        ]


def _handler_of(name: str, args: tuple[Any, ...]) -> int | None:
    if name == "handlers.advance_cursor":
        return int(args[0])
    delivery = args[1]
    return int(delivery.handler_id)


def settings() -> Settings:
    return Settings(
        allow_private_targets=True,
        delivery_retry_schedule="30",
        delivery_lease_seconds=1.5,  # renews every 0.5 s
    )


async def running(worker: DeliveryWorker, until: Callable[[], bool], timeout: float) -> None:
    """Run the worker until ``until()`` holds (checked off the event loop), then stop it."""
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.to_thread(wait_until, until, timeout)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await worker.aclose()


def test_idle_handlers_are_not_woken_by_other_tenants_events(store: Store) -> None:
    store.organisations.create("Idle", IDLE)
    store.organisations.create("Picky", PICKY)
    counting = CountingStore(store)
    with receiving() as receiver:
        idle = {
            store.handlers.create(
                IDLE, HandlerSpec(name=f"i{n}", url=receiver.url), new_secret()
            ).id
            for n in range(IDLE_HANDLERS)
        }
        picky = store.handlers.create(
            PICKY, HandlerSpec(name="p", url=receiver.url, filter="type:3"), new_secret()
        )
        store.handlers.create(BUSY, HandlerSpec(name="b", url=receiver.url), new_secret())
        worker = DeliveryWorker(cast(Store, counting), settings(), load_catalog(), IdGenerator(2))
        sent: list[int] = []

        quiet_since = {"calls": -1, "at": 0.0}

        def delivered_and_settled() -> bool:
            if not sent:  # every handler has taken its first look and gone quiet: now count
                calls = len(counting.calls_for(IDLE, idle))
                if calls != quiet_since["calls"]:
                    quiet_since.update(calls=calls, at=time.monotonic())
                if calls < IDLE_HANDLERS or time.monotonic() - quiet_since["at"] < 1.5:
                    return False  # (three lease renewals)
                counting.calls.clear()
                for _ in range(10):
                    sent.extend(append(store, 2, organisation_id=BUSY))
                    sent.extend(append(store, 1, organisation_id=PICKY))  # not a type it wants
            last = store.log.last_seq()
            cursors = [store.handlers.get(h) for h in (*idle, picky.id)]
            moved = all(h is not None and h.cursor_seq >= last for h in cursors)
            return moved and set(receiver.delivered_ids()) >= set(sent[0::3] + sent[1::3])

        asyncio.run(running(worker, delivered_and_settled, 30))

    busy_ids = [i for n, i in enumerate(sent) if n % 3 != 2]
    assert receiver.delivered_ids() == busy_ids  # the busy tenant got its events, in order
    assert counting.calls_for(IDLE, idle) == []
    assert counting.calls_for(PICKY, {picky.id}) == []
    moves = [args for name, args in counting.calls if name == "handlers.advance_cursors"]
    assert moves and len(moves) <= 40  # one write for all of them, at most twice a second


def test_an_idle_handler_wakes_for_a_replay_and_for_its_own_events(store: Store) -> None:
    with receiving() as receiver:
        before = append(store, 3)
        handler = store.handlers.create(BUSY, HandlerSpec(name="h", url=receiver.url), new_secret())
        worker = DeliveryWorker(store, settings(), load_catalog(), IdGenerator(2))
        later: list[int] = []
        replayed: list[bool] = []

        def replayed_then_live() -> bool:
            current = store.handlers.get(handler.id)
            if not replayed:  # asleep now: only the replay can wake it
                if current is None or current.owner is None:
                    return False
                store.handlers.create_replay(handler.id, 0, 2**53)
                replayed.append(True)
            got = receiver.delivered_ids()
            if got == before and not later:
                later.extend(append(store, 2))
            return bool(later) and got == [*before, *later]

        asyncio.run(running(worker, replayed_then_live, 30))
    assert receiver.delivered_ids() == [*before, *later]
