"""The live feed: one poller over the event log, fanning new entries out to subscribers.

However many streams are open, the log is read once per tick (and not at all when none
is), by a ``herald.follower.Follower``. Subscribers are indexed by organisation and
grouped by filter and token scope, so an entry costs nothing for the streams of other
organisations, and is parsed once, matched once per distinct filter and framed once per
group (off the event loop), not once per stream. Handing the frames out yields to the
event loop every ``OFFERS_PER_TURN`` offers.

Each subscriber gets a bounded queue of the frames its filter selects; a subscriber that
lets its queue fill up is ended as ``too slow``, so a slow client can never make the
server hold more than ``capacity`` events for it. Polling also sees the writes of other
processes on the same database. ``closing`` ends every stream (the server is stopping);
it is a plain flag, so a signal handler may set it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from herald.events.types import LogEntry
from herald.follower import Follower, LogReader, MemoryCursor, read_batch
from herald.loops import Loops
from herald.query.filter import EventFilter
from herald.store import Store

log = logging.getLogger("herald.live")
Runner = Callable[..., Awaitable[Any]]
OrgScope = tuple[int, ...] | None  # the organisations a stream's caller sees (None: all)
Framer = Callable[[LogEntry, OrgScope], bytes]  # an entry as a stream of that scope sends it
Frame = tuple[int, bytes]  # (log position, the message)
Kind = tuple[EventFilter, OrgScope]  # streams with the same filter and scope get equal frames
Group = tuple[int | None, EventFilter, OrgScope]  # a kind, filed under an organisation (or all)
OFFERS_PER_TURN = 1000


def selects(flt: EventFilter, record: dict[str, Any]) -> bool:
    """Whether a stream's filter selects a record (the stream's one use of the matcher)."""
    return flt.matches(record)


def read_selected(
    store: Store, flt: EventFilter, scope: OrgScope, frame: Framer, after_seq: int, limit: int
) -> tuple[list[Frame], int, bool]:
    """Blocking: the frames of what ``flt`` selects among the next ``limit`` entries of its
    organisations' log after ``after_seq`` (a tenant's: a scan's worth of the log at most),
    the position read up to, and whether that was the end of the log."""
    entries, position, complete = read_batch(store, after_seq, limit, flt.organisation_ids)
    frames = [
        (entry.seq, frame(entry, scope))
        for entry in entries
        if selects(flt, orjson.loads(entry.body))
    ]
    return frames, position, complete


def route(
    entries: Sequence[LogEntry], kinds: Mapping[int | None, Sequence[Kind]], frame: Framer
) -> list[tuple[Group, Frame]]:
    """Blocking (CPU): the frame each subscriber group gets of each entry.

    An entry is parsed only if its organisation (or everyone) has subscribers, matched once
    per distinct filter and framed once per distinct scope.
    """
    everyone = kinds.get(None, ())
    routed: list[tuple[Group, Frame]] = []
    for entry in entries:
        organisation = entry.organisation_id
        own = kinds.get(organisation, ())
        if not own and not everyone:
            continue
        try:
            record = orjson.loads(entry.body)
            framed: dict[OrgScope, Frame] = {}
            for key, members in ((organisation, own), (None, everyone)):
                for flt, scope in members:
                    if selects(flt, record):
                        if scope not in framed:
                            framed[scope] = (entry.seq, frame(entry, scope))
                        routed.append(((key, flt, scope), framed[scope]))
        except Exception:  # one odd record must not stop the feed for everyone
            log.exception("live feed: log entry %d could not be matched; skipped", entry.seq)
    return routed


@dataclass(eq=False)
class Subscription:
    """One stream's place at the feed: its filter, its token scope and its bounded queue."""

    filter: EventFilter
    capacity: int
    scope: OrgScope
    queue: asyncio.Queue[Frame] = field(init=False)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str = ""

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(self.capacity)

    @property
    def groups(self) -> list[Group]:
        """Where the feed files this subscription: one group per organisation it sees."""
        organisations = self.filter.organisation_ids
        keys = [None] if organisations is None else list(organisations)
        return [(key, self.filter, self.scope) for key in keys]

    def offer(self, frame: Frame) -> None:
        """Queue a frame; a full queue ends the subscription (the client is too slow)."""
        if self.ended.is_set():
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.end("too slow")

    def end(self, reason: str) -> None:
        """End the stream (the first reason given is kept)."""
        if not self.ended.is_set():
            self.reason = reason
            self.ended.set()


LIVE_FEED = "live_feed"


class LogFeed:
    """Reads the log after its position every ``interval`` seconds while anyone listens:
    a ``Follower`` whose cursor is kept in memory (the frames die with the process)."""

    def __init__(
        self,
        store: Store,
        run: Runner,
        frame: Framer,
        *,
        interval: float = 0.25,
        batch: int = 1000,
        loops: Loops | None = None,
    ) -> None:
        self._store = store
        self._loops = loops or Loops()
        self._run = run
        self.frame = frame
        self._interval = interval
        self._cursor = MemoryCursor()
        self._follower = Follower(LogReader(store, run), self._cursor, self._dispatch, batch=batch)
        self._groups: dict[Group, set[Subscription]] = {}
        # The kinds of stream each organisation has, as tuples replaced (never changed in
        # place) so the routing thread reads them while streams come and go.
        self._kinds: dict[int | None, tuple[Kind, ...]] = {}
        self._task: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()
        self.closing = False

    @property
    def position(self) -> int:
        """The log position up to which the subscribers were offered their frames."""
        return self._cursor.seq

    async def subscribe(self, subscription: Subscription) -> None:
        """Start queueing, for ``subscription``, what is committed from now on."""
        async with self._starting:
            if self._task is None or self._task.done():
                self._cursor.seq = await self._run(self._store.log.last_seq)
                self._task = asyncio.create_task(self._poll(), name="herald-live-feed")
            for group in subscription.groups:  # before the new task first looks
                members = self._groups.setdefault(group, set())
                if not members:
                    organisation, flt, scope = group
                    self._kinds[organisation] = (*self._kinds.get(organisation, ()), (flt, scope))
                members.add(subscription)

    def unsubscribe(self, subscription: Subscription) -> None:
        for group in subscription.groups:
            members = self._groups.get(group)
            if members is not None:
                members.discard(subscription)
                if not members:
                    del self._groups[group]
                    organisation, flt, scope = group
                    rest = tuple(k for k in self._kinds[organisation] if k != (flt, scope))
                    if rest:
                        self._kinds[organisation] = rest
                    else:
                        del self._kinds[organisation]

    async def close(self) -> None:
        """Stop polling (the app is shutting down)."""
        self._groups.clear()
        self._kinds.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _poll(self) -> None:
        await self._follower.run(self._loops, LIVE_FEED, self._interval, active=self._listened)
        if self.closing:
            for members in list(self._groups.values()):
                for subscription in members:
                    subscription.end("server stopping")

    def _listened(self) -> bool:
        return bool(self._groups) and not self.closing

    async def _dispatch(self, entries: list[LogEntry]) -> None:
        """Offer each subscriber its frames of ``entries`` (the follower then advances)."""
        kinds = self._kinds
        if None in kinds or any(e.organisation_id in kinds for e in entries):
            offers = 0
            for group, frame in await self._run(route, entries, kinds, self.frame):
                for subscription in list(self._groups.get(group, ())):
                    subscription.offer(frame)
                    offers += 1
                if offers >= OFFERS_PER_TURN:  # let other requests run between handfuls
                    offers = 0
                    await asyncio.sleep(0)
