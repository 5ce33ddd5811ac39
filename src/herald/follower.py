"""Following the event log: one way to read it, to keep a place in it and to wait for it.

Every reader of the log (the live stream, the delivery worker, the device projector, the
rules engine) is built from the same three parts:

- ``LogReader`` reads batches of the log off the event loop, on the caller's thread pool
  (the one hop: ``await reader.run(blocking_call, ...)``). A batch of every organisation's
  events is ``store.log.read``, one of some organisations' a bounded ``store.log.scan``; on
  PostgreSQL both read only up to the safe watermark, so no late-committing event is skipped.
- A ``Cursor`` is the follower's place in the log. Its store writes the new position in
  the same transaction as the follower's output (the states it folded, the delivery it
  recorded) and only if the position is still the one the follower read (compare-and-set):
  two owners can never both advance it, and a batch is never half done. ``MemoryCursor``
  keeps it in the process, for a follower whose output does not outlive it (the live stream).
- ``Follower`` drives one cursor: read after it, hand the batch to ``handle``, advance, until
  the end of the log; then sleep ``poll_seconds`` (or until ``wake()``). A failure is logged,
  shown in ``/ready`` (``Loops``) and tried again after a backoff.

A follower of many cursors (delivery: one per handler) uses ``LogReader`` and its own cursors
directly, and ``LogWatcher`` to learn, with one cheap query per poll, when the log grew.

Usage (one cursor)::

    class Counted:
        '''A Cursor: counts events per organisation in the table its position lives in.'''

        def position(self) -> int:
            return store.counter_position()

        def advance(self, after_seq: int, upto_seq: int, output: Counter[int]) -> bool:
            return store.save_counts(after_seq, upto_seq, output)  # one transaction, CAS

    async def count(entries: list[LogEntry]) -> Counter[int]:
        return Counter(entry.organisation_id for entry in entries)

    follower = Follower(LogReader(store, threads.run), Counted(), count, batch=1000)
    await follower.run_once()  # up to the end of the log (tests)
    await follower.run(loops, "counter", poll_seconds=0.2)  # until cancelled
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from herald.events.types import LogEntry, LogScan
from herald.loops import Loops, backoff_seconds
from herald.query.filter import EventFilter
from herald.store import Store

log = logging.getLogger("herald.follower")
T = TypeVar("T")
Out = TypeVar("Out")
Out_contra = TypeVar("Out_contra", contravariant=True)


class Runner(Protocol):
    """Runs a blocking call off the event loop (``Threads.run``, ``Services.run``)."""

    def __call__(self, work: Callable[..., T], /, *args: Any) -> Awaitable[T]: ...


def read_batch(
    store: Store,
    after_seq: int,
    limit: int,
    organisation_ids: tuple[int, ...] | None = None,
    upto_seq: int | None = None,
    flt: EventFilter | None = None,
) -> LogScan:
    """Blocking: at most ``limit`` events after ``after_seq`` (and at most ``upto_seq``), of
    ``organisation_ids`` (None: every organisation's), with the position read up to and
    whether that was the end of the log. Some organisations' read looks at a scan's worth of
    the log at most, so it may come back short of the end with few or no entries, and takes
    only the events ``flt`` selects (in the query: nothing is parsed for it)."""
    if organisation_ids is not None:
        return store.log.scan(after_seq, limit, organisation_ids, upto_seq, flt=flt)
    entries = store.log.read(after_seq, limit)
    if upto_seq is not None and entries and entries[-1].seq > upto_seq:
        entries = [entry for entry in entries if entry.seq <= upto_seq]
        return LogScan(entries, upto_seq, complete=True)
    return LogScan(entries, entries[-1].seq if entries else after_seq, len(entries) < limit)


class LogReader:
    """Reads the log in batches (``read_batch``), off the event loop."""

    def __init__(self, store: Store, run: Runner) -> None:
        self.store = store
        self.run = run  # the one way a follower's blocking calls leave the event loop

    async def read(
        self,
        after_seq: int,
        limit: int,
        organisation_ids: tuple[int, ...] | None = None,
        upto_seq: int | None = None,
        flt: EventFilter | None = None,
    ) -> LogScan:
        return await self.run(
            read_batch, self.store, after_seq, limit, organisation_ids, upto_seq, flt
        )


class Cursor(Protocol[Out_contra]):
    """A follower's place in the log, stored with its output."""

    def position(self) -> int:
        """Blocking: the last log position the output covers."""

    def advance(self, after_seq: int, upto_seq: int, output: Out_contra) -> bool:
        """Blocking: write ``output`` and move the position from ``after_seq`` to ``upto_seq``
        in one transaction, if it is still at ``after_seq``; False (nothing written) if
        another owner moved it."""


class MemoryCursor:
    """A position kept in the process (for output that does not outlive it)."""

    def __init__(self, seq: int = 0) -> None:
        self.seq = seq

    def position(self) -> int:
        return self.seq

    def advance(self, after_seq: int, upto_seq: int, output: object) -> bool:
        if self.seq != after_seq:
            return False
        self.seq = upto_seq
        return True


class Follower(Generic[Out]):
    """Follows the log with one cursor: each step reads a batch after it, has ``handle``
    make the output, and advances the cursor with it."""

    def __init__(
        self,
        reader: LogReader,
        cursor: Cursor[Out],
        handle: Callable[[list[LogEntry]], Awaitable[Out]],
        *,
        batch: int,
        organisation_ids: tuple[int, ...] | None = None,
        read: Callable[[int, int], LogScan] | None = None,
    ) -> None:
        """``read`` (blocking: after, limit), if given, reads each batch instead of
        ``read_batch`` (the device-state owner reads less of what it appended itself)."""
        self.reader = reader
        self.cursor = cursor
        self.handle = handle
        self.batch = batch
        self.organisation_ids = organisation_ids
        self._read_after = read
        self._woken = asyncio.Event()

    async def step(self) -> tuple[int | None, bool]:
        """Follow one batch: how many entries it handled (None: another owner moved the
        cursor meanwhile, nothing was written) and whether it reached the end of the log."""
        after, scan = await self.reader.run(self._read)
        if scan.position == after:
            return 0, scan.complete
        output = await self.handle(scan.entries)
        if not await self.reader.run(self.cursor.advance, after, scan.position, output):
            return None, False
        return len(scan.entries), scan.complete

    def _read(self) -> tuple[int, LogScan]:
        after = self.cursor.position()
        if self._read_after is not None:
            return after, self._read_after(after, self.batch)
        return after, read_batch(self.reader.store, after, self.batch, self.organisation_ids)

    async def run_once(self) -> int:
        """Follow up to the end of the log; how many entries were handled."""
        done = 0
        while True:
            count, complete = await self.step()
            done += count or 0
            if complete:
                return done

    async def run(
        self,
        loops: Loops,
        name: str,
        poll_seconds: float,
        *,
        active: Callable[[], bool] = lambda: True,
    ) -> None:
        """Follow until cancelled, or until ``active()`` is false (checked before each
        step): up to the end of the log, then a sleep of ``poll_seconds`` or until
        ``wake()``. A failing step is logged, shown as loop ``name`` in ``/ready`` and
        ``/metrics``, and tried again after a backoff."""
        loops.register(name)
        while active():
            try:
                _, complete = await self.step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a follower must outlive any failure
                state = loops.failed(name, exc)
                delay = max(poll_seconds, backoff_seconds(state.failures))
                log.exception("%s: failed (%d in a row); trying again", name, state.failures)
                await self._sleep(delay)
                continue
            loops.succeeded(name)
            if complete:
                await self._sleep(poll_seconds)

    def wake(self) -> None:
        """Cut the current sleep short: the log may have grown."""
        self._woken.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), seconds)
        self._woken.clear()


@dataclass(frozen=True, slots=True)
class Growth:
    """The log grew from ``after`` to ``upto``; by whose events of which types (None: too
    many events to look at, take it as everyone's)."""

    after: int
    upto: int
    activity: Mapping[int, set[int]] | None


class LogWatcher:
    """Knows how far the log grew and by whose events, for followers of many cursors that
    sleep until the log holds something for them.

    ``poll()`` (call it every poll interval) costs one cheap query while the log stands
    still, and one bounded look at the new events' organisations and types when it grew;
    it then wakes the waiters of those organisations (``wait``). ``has_news`` tells a
    waiter whether it may want any of the growths it slept through.
    """

    def __init__(self, reader: LogReader, *, scan: int = 20_000, kept: int = 256) -> None:
        self.reader = reader
        self.end = 0  # the end of the log as the last poll saw it
        self._scan = scan  # new events looked at to tell whose they are; more: everyone's
        self._growths: deque[Growth] = deque(maxlen=kept)  # for waiters that look late
        self._woken = asyncio.Event()  # set when everyone should look
        self._org_woken: dict[int, asyncio.Event] = {}  # per organisation: its news

    async def poll(self) -> None:
        """Note how far the log grew and by whose events; wake those organisations."""
        store = self.reader.store
        end = await self.reader.run(store.log.last_seq)
        if end == self.end:
            return
        activity = await self.reader.run(store.log.activity, self.end, end, self._scan)
        self._growths.append(Growth(self.end, end, activity))
        self.end = end
        if activity is None:
            self.wake()
            return
        for organisation_id in activity:
            self.wake_organisation(organisation_id)

    def has_news(
        self, organisation_id: int, type_ids: Collection[int] | None, seen_seq: int
    ) -> bool:
        """Whether events of ``organisation_id`` of ``type_ids`` (None: any) came into the
        log after ``seen_seq``."""
        if seen_seq >= self.end:
            return False
        if not self._growths or self._growths[0].after > seen_seq:
            return True  # too long ago to tell
        for growth in reversed(self._growths):
            if growth.upto <= seen_seq:
                break
            if growth.activity is None:
                return True
            types = growth.activity.get(organisation_id)
            if types and (type_ids is None or not types.isdisjoint(type_ids)):
                return True
        return False

    def wake(self) -> None:
        """Wake every waiter."""
        self._woken.set()
        self._woken = asyncio.Event()
        for organisation_id in list(self._org_woken):
            self.wake_organisation(organisation_id)

    def wake_organisation(self, organisation_id: int) -> None:
        woken = self._org_woken.pop(organisation_id, None)
        if woken is not None:
            woken.set()

    async def wait(self, organisation_id: int, timeout: float | None) -> bool:
        """Sleep until the log grows by ``organisation_id``'s events (True), or until
        ``timeout`` seconds pass or everyone is woken (False)."""
        woken = self._org_woken.setdefault(organisation_id, asyncio.Event())
        everyone = asyncio.ensure_future(self._woken.wait())
        mine = asyncio.ensure_future(woken.wait())
        try:
            done, _ = await asyncio.wait(
                (everyone, mine), timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            everyone.cancel()
            mine.cancel()
        return bool(done) and everyone not in done
