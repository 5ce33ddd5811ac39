"""The delivery worker's reads: a handler's next batch, live (after its cursor) or of a replay.

A live read starts during the previous batch's send (``read_ahead``), so a busy handler's
next batch is usually read by the time it is wanted. Reads of one organisation's log look
at a scan's worth of the log at most (``store.log.scan``) and select with the handler's
filter in the query, so every entry read is one to send and no record is parsed to choose;
a read that finds nothing the handler wants moves its cursor past what it looked at, so the
next read starts there.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from operator import attrgetter

from herald.delivery.formats import MAX_BATCH_BODY_BYTES, Item
from herald.delivery.runtime import Ahead, HandlerRuntime
from herald.events.types import LogEntry, LogScan
from herald.follower import LogReader, LogWatcher
from herald.handlers.filters import handler_filter as filter_of
from herald.handlers.types import Handler, HandlerSpec, Replay
from herald.query.filter import EventFilter
from herald.store import Store
from herald.timefmt import now_ms, parse_timestamp, to_ms

READ_AHEAD = 500  # log entries read at least per query: the next batches come along
MAX_SKIP_CHUNKS = 20  # chunks of non-matching events skipped per step
QUIET_PASS_SECONDS = 1.0  # how often an idle handler's cursor follows the end of the log

_SEQ = attrgetter("seq")
Settle = Callable[[HandlerRuntime], Awaitable[bool]]  # waits for the handler's bookkeeping
Skipped = Callable[[Handler, Replay, list[int]], Awaitable[None]]  # records skipped events


@dataclass(frozen=True, slots=True)
class Batch:
    """Events to send in one request, and where the cursor goes once they are delivered."""

    items: list[Item]
    advance_to: int  # the cursor after a successful send
    replay: Replay | None = None
    rest: list[LogEntry] = field(default_factory=list)  # read past ``advance_to``


class BatchReader:
    """Reads handlers' batches for the lease ``owner``."""

    def __init__(self, reader: LogReader, watcher: LogWatcher, owner: str) -> None:
        self.reader = reader
        self.watcher = watcher
        self.owner = owner

    async def live(
        self,
        runtime: HandlerRuntime,
        handler: Handler,
        handler_filter: EventFilter,
        settle: Settle,
    ) -> Batch | None:
        """The handler's next batch after its cursor: None if there is none (or its lease
        is lost), empty if it only moved past events it does not want. ``settle`` waits for
        its bookkeeping before its cursor is moved."""
        store = self.reader.store
        cursor = handler.cursor_seq
        waited = False
        for _ in range(MAX_SKIP_CHUNKS):
            (entries, position, complete), log_end = await self._read(
                runtime, handler, handler_filter, cursor
            )
            if not entries and complete and cursor == handler.cursor_seq:
                await self._pass_quiet(runtime, handler, log_end, settle)
                return None
            if not entries and complete:
                return Batch([], cursor)
            items: list[Item] = []  # the read may have looked at other tenants' rows only
            end, full = position, False
            if entries:
                items, end, full = select(entries, handler.spec)
            if not items:
                cursor = position  # nothing of its own up to where the read looked
                if not await settle(runtime):
                    return None
                moved = await self.reader.run(
                    store.handlers.advance_cursor,
                    handler.id,
                    self.owner,
                    cursor,
                    handler.organisation_id,
                )
                if not moved:
                    return None
                continue
            if not full and not waited and handler.spec.batch_max_wait_ms > 0:
                wait_ms = handler.spec.batch_max_wait_ms - (now_ms() - received_ms(items[0]))
                if wait_ms > 0:  # let the batch fill up for at most max_wait_ms
                    waited = True
                    await asyncio.sleep(wait_ms / 1000)
                    continue
            return Batch(items, end, rest=entries[bisect.bisect_right(entries, end, key=_SEQ) :])
        return Batch([], cursor)

    async def replay(
        self,
        handler: Handler,
        handler_filter: EventFilter,
        skipped: Skipped,
    ) -> Batch | None:
        """The next batch of the handler's pending replays, None if they are done.
        ``skipped`` records the events a replay cannot place in its time range."""
        store = self.reader.store
        unreadable: list[int] = []  # events whose time cannot be read: skipped, logged
        for replay in await self.reader.run(store.handlers.pending_replays, handler.id):

            def wanted(item: Item, replay: Replay = replay) -> bool:
                timestamp = _timestamp_ms(item)
                if timestamp is None:
                    unreadable.append(item.event_id)
                    return False
                return replay.from_ms <= timestamp <= replay.until_ms

            organisations = (handler.organisation_id,)
            cursor = replay.cursor_seq
            while cursor < replay.end_seq:  # a scan's worth of the log per read
                entries, cursor, complete = await self.reader.read(
                    cursor, chunk_of(handler), organisations, replay.end_seq, handler_filter
                )
                if entries:
                    items, end, _ = select(entries, handler.spec, wanted)
                    if unreadable:
                        await skipped(handler, replay, unreadable)
                        unreadable.clear()
                    if items:
                        return Batch(items, end, replay)
                if complete:
                    break
                await self.reader.run(_advance_replay, store, handler, replay.id, cursor)
            await self.reader.run(_advance_replay, store, handler, replay.id, replay.end_seq)
        return None

    async def _read(
        self, runtime: HandlerRuntime, handler: Handler, handler_filter: EventFilter, cursor: int
    ) -> tuple[LogScan, int]:
        """The handler's log after ``cursor`` that its filter selects (read during the last
        send if it was, with the same filter), a scan's worth of the log at most, and the end
        of the log as the watcher had seen it before the read."""
        ahead, runtime.ahead = runtime.ahead, None
        key = (cursor, chunk_of(handler), handler.spec.filter)
        if ahead is not None and (ahead.cursor, ahead.chunk, ahead.filter) == key:
            scan, log_end = await ahead.scan, ahead.log_end
        else:
            if ahead is not None:
                ahead.scan.cancel()
            log_end = self.watcher.end
            scan = await self.reader.read(
                cursor, chunk_of(handler), (handler.organisation_id,), None, handler_filter
            )
        runtime.covered = log_end
        return scan, log_end

    def read_ahead(
        self, runtime: HandlerRuntime, handler: Handler, cursor: int, rest: list[LogEntry]
    ) -> None:
        """Start reading the log after ``cursor``, the handler's next batch if this one goes;
        ``rest``, what the last read held past ``cursor``, is that batch if it is big enough
        (a store call saved)."""
        chunk = chunk_of(handler)
        if len(rest) >= handler.spec.batch_max_events:
            scan: asyncio.Future[LogScan] = asyncio.get_running_loop().create_future()
            scan.set_result(LogScan(rest, rest[-1].seq, complete=False))
        else:
            flt = filter_of(handler.spec.filter)
            scan = asyncio.ensure_future(
                self.reader.read(cursor, chunk, (handler.organisation_id,), None, flt)
            )
        runtime.ahead = Ahead(cursor, chunk, handler.spec.filter, self.watcher.end, scan)

    async def _pass_quiet(
        self,
        runtime: HandlerRuntime,
        handler: Handler,
        log_end: int,
        settle: Settle,
    ) -> None:
        """Move the cursor of a handler whose read came back empty to ``log_end`` (the end
        of the log seen before that read), at most once a second: its next reads then skip
        the other tenants' events instead of scanning them again."""
        if log_end <= handler.cursor_seq or time.monotonic() - runtime.passed < QUIET_PASS_SECONDS:
            return
        if not await settle(runtime):
            return
        runtime.passed = time.monotonic()
        await self.reader.run(
            self.reader.store.handlers.advance_cursor,
            handler.id,
            self.owner,
            log_end,
            handler.organisation_id,
        )


def _advance_replay(store: Store, handler: Handler, replay_id: int, cursor: int) -> None:
    store.handlers.advance_replay(replay_id, cursor, handler.id, handler.organisation_id)


def select(
    entries: list[LogEntry],
    spec: HandlerSpec,
    wanted: Callable[[Item], bool] | None = None,
) -> tuple[list[Item], int, bool]:
    """The first wanted entries (None: all) that fit one batch of ``spec``, the cursor past
    them (or past all the entries if the batch is not full), and whether it is full. A batch
    holds ``batch_max_events`` at most and, past its first, records of ``batch_max_bytes``
    (else ``MAX_BATCH_BODY_BYTES``) at most, each counted as an NDJSON line."""
    limit = spec.batch_max_events
    max_bytes = MAX_BATCH_BODY_BYTES if spec.batch_max_bytes is None else spec.batch_max_bytes
    items: list[Item] = []
    size = 0
    for entry in entries:
        item = Item(entry.seq, entry.event_id, entry.body)
        if wanted is None or wanted(item):
            size += len(entry.body) + 1
            if items and size > max_bytes:  # it starts the next batch: stop before it
                return items, entry.seq - 1, True
            items.append(item)
            if len(items) == limit:
                return items, entry.seq, True
    return items, entries[-1].seq, False


def chunk_of(handler: Handler) -> int:
    """How many log entries to read for one batch: the batch or ``READ_AHEAD``, whichever
    is more (the filter selects in the read: every entry read is one to send)."""
    return max(handler.spec.batch_max_events, READ_AHEAD)


def received_ms(item: Item) -> int:
    """When the item's event was received (now, if that cannot be read)."""
    received = item.envelope.received
    try:
        return to_ms(parse_timestamp(received)) if isinstance(received, str) else now_ms()
    except (ValueError, OverflowError):  # an event stored before dates were bounded
        return now_ms()


def _timestamp_ms(item: Item) -> int | None:
    """The event's time, or None if it cannot be read (stored before dates were bounded)."""
    timestamp = item.envelope.timestamp
    try:
        return to_ms(parse_timestamp(timestamp)) if isinstance(timestamp, str) else None
    except (ValueError, OverflowError):
        return None
