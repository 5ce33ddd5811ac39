"""The live feed: one poller over the event log, fanning new entries out to subscribers.

However many streams are open, the log is read once per tick (and not at all when none
is). Subscribers are indexed by organisation and grouped by filter, so an entry costs
nothing for the streams of other organisations, and is parsed once and matched once per
distinct filter of its organisation (off the event loop), not once per stream.

Each subscriber gets a bounded queue of the entries its filter selects; a subscriber
that lets its queue fill up is ended as ``too slow``, so a slow client can never make
the server hold more than ``capacity`` events for it. Polling also sees the writes of
other processes on the same database. ``closing`` ends every stream (the server is
stopping); it is a plain flag, so a signal handler may set it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from herald.api.event_match import matches
from herald.store import EventFilter, LogEntry, Store

log = logging.getLogger("herald.live")
Runner = Callable[..., Awaitable[Any]]
Group = tuple[int | None, EventFilter]  # (organisation, or None for every one; the filter)


def selects(flt: EventFilter, record: dict[str, Any]) -> bool:
    """Whether a stream's filter selects a record (the stream's one use of the matcher)."""
    return matches(flt, record)


def read_selected(
    store: Store, flt: EventFilter, after_seq: int, limit: int
) -> tuple[list[LogEntry], int, bool]:
    """Blocking: the entries ``flt`` selects among the next ``limit`` of its organisations'
    log after ``after_seq``, the position read up to, and whether that reached the end."""
    entries = store.read_log(after_seq, limit, flt.organisation_ids)
    chosen = [entry for entry in entries if selects(flt, orjson.loads(entry.body))]
    return chosen, (entries[-1].seq if entries else after_seq), len(entries) < limit


def route(
    entries: Sequence[LogEntry], filters: Mapping[int | None, Sequence[EventFilter]]
) -> list[tuple[LogEntry, list[Group]]]:
    """Blocking (CPU): each entry with the subscriber groups that select it.

    An entry is parsed only if its organisation (or everyone) has subscribers, and
    matched once per distinct filter.
    """
    everyone = filters.get(None, ())
    routed: list[tuple[LogEntry, list[Group]]] = []
    groups: list[Group]
    for entry in entries:
        own = filters.get(entry.organisation_id, ())
        if not own and not everyone:
            continue
        try:
            record = orjson.loads(entry.body)
            groups = [(entry.organisation_id, f) for f in own if selects(f, record)]
            groups += [(None, f) for f in everyone if selects(f, record)]
        except Exception:  # one odd record must not stop the feed for everyone
            log.exception("live feed: log entry %d could not be matched; skipped", entry.seq)
            continue
        if groups:
            routed.append((entry, groups))
    return routed


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

    @property
    def groups(self) -> list[Group]:
        """Where the feed files this subscription: one group per organisation it sees."""
        scope = self.filter.organisation_ids
        return [(None, self.filter)] if scope is None else [(o, self.filter) for o in scope]

    def offer(self, entry: LogEntry) -> None:
        """Queue an entry; a full queue ends the subscription (the client is too slow)."""
        if self.ended.is_set():
            return
        try:
            self.queue.put_nowait(entry)
        except asyncio.QueueFull:
            self.end("too slow")

    def end(self, reason: str) -> None:
        """End the stream (the first reason given is kept)."""
        if not self.ended.is_set():
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
        self._groups: dict[Group, set[Subscription]] = {}
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
            for group in subscription.groups:  # before the new task first looks
                self._groups.setdefault(group, set()).add(subscription)

    def unsubscribe(self, subscription: Subscription) -> None:
        for group in subscription.groups:
            members = self._groups.get(group)
            if members is not None:
                members.discard(subscription)
                if not members:
                    del self._groups[group]

    async def close(self) -> None:
        """Stop polling (the app is shutting down)."""
        self._groups.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _subscriptions(self) -> set[Subscription]:
        return {s for members in self._groups.values() for s in members}

    async def _poll(self) -> None:
        while self._groups:
            if self.closing:
                for subscription in self._subscriptions():
                    subscription.end("server stopping")
                return
            try:
                entries: list[LogEntry] = await self._run(
                    self._store.read_log, self.position, self._batch
                )
                await self._dispatch(entries)
            except Exception:
                log.exception("live feed: reading or routing the log failed; retrying")
                entries = []
            if len(entries) < self._batch:
                await asyncio.sleep(self._interval)

    async def _dispatch(self, entries: list[LogEntry]) -> None:
        if not entries:
            return
        filters: dict[int | None, list[EventFilter]] = {}
        for organisation, flt in self._groups:
            filters.setdefault(organisation, []).append(flt)
        if None in filters or any(e.organisation_id in filters for e in entries):
            for entry, groups in await self._run(route, entries, filters):
                for group in groups:
                    for subscription in list(self._groups.get(group, ())):
                        subscription.offer(entry)
        self.position = entries[-1].seq
