"""The live feed: one poller over the event log, fanning new entries out to subscribers.

However many streams are open, the log is read once per tick (and not at all when none
is). Each subscriber gets a bounded queue of the entries its filter selects; a subscriber
that lets its queue fill up is marked ``overflowed`` and its stream is closed, so a slow
client can never make the server hold more than ``capacity`` events for it. Polling also
sees the writes of other processes on the same database. ``closing`` ends every stream
(the server is stopping); it is a plain flag, so a signal handler may set it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from herald.store import EventFilter, LogEntry, Store

log = logging.getLogger("herald.live")
Runner = Callable[..., Awaitable[Any]]


@dataclass(eq=False)
class Subscription:
    """One stream's place at the feed: its filter and its bounded queue."""

    filter: EventFilter
    capacity: int
    queue: asyncio.Queue[LogEntry] = field(init=False)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str = ""

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(self.capacity)

    def wants(self, entry: LogEntry, record: dict[str, Any]) -> bool:
        scope = self.filter.organisation_ids
        if scope is not None and entry.organisation_id not in scope:
            return False
        return self.filter.matches(record)

    def offer(self, entry: LogEntry) -> None:
        """Queue an entry; a full queue ends the subscription (the client is too slow)."""
        if self.ended.is_set():
            return
        try:
            self.queue.put_nowait(entry)
        except asyncio.QueueFull:
            self.end("too slow")

    def end(self, reason: str) -> None:
        self.reason = reason
        self.ended.set()


class LogFeed:
    """Reads the log after its position every ``interval`` seconds while anyone listens."""

    def __init__(
        self, store: Store, run: Runner, *, interval: float = 0.25, batch: int = 1000
    ) -> None:
        self._store = store
        self._run = run
        self._interval = interval
        self._batch = batch
        self._subscribers: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()
        self.position = 0
        self.closing = False

    async def subscribe(self, subscription: Subscription) -> None:
        """Start queueing, for ``subscription``, what is committed from now on."""
        async with self._starting:
            if self._task is None or self._task.done():
                self.position = await self._run(self._store.last_seq)
                self._task = asyncio.create_task(self._poll(), name="herald-live-feed")
            self._subscribers.add(subscription)  # before the new task first looks

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    async def close(self) -> None:
        """Stop polling (the app is shutting down)."""
        self._subscribers.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _poll(self) -> None:
        while self._subscribers:
            if self.closing:
                for subscription in self._subscribers:
                    subscription.end("server stopping")
                return
            try:
                entries: list[LogEntry] = await self._run(
                    self._store.read_log, self.position, self._batch
                )
            except Exception:
                log.exception("live feed: reading the log failed; retrying")
                entries = []
            self._dispatch(entries)
            if len(entries) < self._batch:
                await asyncio.sleep(self._interval)

    def _dispatch(self, entries: list[LogEntry]) -> None:
        for entry in entries:
            record = orjson.loads(entry.body)
            for subscription in list(self._subscribers):
                if subscription.wants(entry, record):
                    subscription.offer(entry)
            self.position = entry.seq
