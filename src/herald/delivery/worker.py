"""The delivery worker: serves each leased handler from its own task.

``run_once()`` does one pass over every handler (tests drive it); ``run()`` is the loop
``herald serve`` and ``herald worker`` run, with one task per handler so that a slow or dead
receiver never delays another handler. Each task keeps its handler as the last write
returned it, and an idle one sleeps until the log grows: ``run()`` looks every
``HERALD_DELIVERY_POLL_SECONDS`` for new events and for handlers to take up.

A handler task is never cancelled in the middle of a step (only when the worker stops): a
request cut off after the receiver got it would be sent again. A task whose handler this
worker no longer holds stops after its current step, whose bookkeeping the store refuses if
another worker holds the lease by then; and while the leases cannot be renewed (the store
unreachable), no task starts a step once the last renewal's lease period has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from herald import metrics
from herald.catalog import Catalog
from herald.config import Settings
from herald.delivery.filters import handler_filter as filter_of
from herald.delivery.formats import MAX_BATCH_BODY_BYTES, Item
from herald.delivery.retry import RetryPolicy
from herald.delivery.sinks import Outgoing, Sink, open_sink
from herald.delivery.webhook import SendResult, WebhookSender
from herald.events.types import LogEntry, LogScan
from herald.handlers.types import Delivery, Handler, HandlerProgress, HandlerSpec, Replay
from herald.ids import IdGenerator
from herald.loops import Loops, run_forever
from herald.model import EventIn, NewEvent, OrganisationRef, TypeRef, build_event
from herald.query.filter import EventFilter
from herald.sealing import SecretBox
from herald.store import Store, StoreError
from herald.threads import Threads
from herald.timefmt import format_ms, now_ms, parse_timestamp, to_ms

log = logging.getLogger("herald.delivery")
T = TypeVar("T")

HANDLER_DISABLED_TYPE = 2000
CHUNK = 500  # log entries read per query when the handler's filter may skip some
READ_AHEAD = 500  # log entries read at least per query: the next batches come along
MAX_SKIP_CHUNKS = 20  # chunks of non-matching events skipped per step
QUIET_PASS_SECONDS = 1.0  # how often an idle handler's cursor follows the end of the log
STORE_THREADS = 16  # store calls of the worker's handlers running at once
ACTIVITY_SCAN = 20_000  # new events looked at to tell whose they are; more: everyone wakes
ACTIVITY_KEPT = 256  # growths of the log remembered for handlers that wake late
CLAIMABLE_LOOK_SECONDS = 0.5  # how often _watch looks for handlers to take up


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one step did for one handler.

    ``kind``: idle, waiting (backing off), skipped (moved past non-matching events),
    delivered, retry, rejected, disabled, or gone (deleted, disabled or lease lost).
    """

    handler_id: int
    kind: str
    event_ids: tuple[int, ...] = ()
    replay_id: int | None = None
    handler: Handler | None = None  # as the step found or wrote it: the next step's state
    seen_seq: int | None = None  # idle: the end of the log its read covered


@dataclass(frozen=True, slots=True)
class _Batch:
    items: list[Item]
    advance_to: int  # the cursor after a successful send
    replay: Replay | None = None
    rest: list[LogEntry] = dataclasses.field(default_factory=list)  # read past ``advance_to``


@dataclass(frozen=True, slots=True)
class _Growth:
    """The log grew from ``after`` to ``upto``; by whose events of which types (None: too
    many events to look at, take it as everyone's)."""

    after: int
    upto: int
    activity: Mapping[int, set[int]] | None


@dataclass(slots=True)
class _Idle:
    """A handler asleep: nothing it may want came into the log up to ``seen``; its cursor
    is at ``cursor`` or later."""

    handler: Handler
    seen: int
    cursor: int


@dataclass(frozen=True, slots=True)
class _Ahead:
    """A read of a handler's log started before it was needed (during a send)."""

    cursor: int
    chunk: int
    log_end: int  # the end of the log as ``_watch`` had seen it when the read started
    scan: asyncio.Future[LogScan]


def owner_name(mode: str) -> str:
    """A lease owner naming where delivery runs: ``serve`` or ``worker``, host and pid."""
    return f"{mode}:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class DeliveryWorker:
    """Leases handlers and delivers their events; one per process."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        catalog: Catalog,
        ids: IdGenerator,
        *,
        mode: str = "worker",
        sender: WebhookSender | None = None,
        policy: RetryPolicy | None = None,
        box: SecretBox | None = None,
        loops: Loops | None = None,
    ) -> None:
        """``box`` opens the handlers' sealed secrets (None: they are stored in plaintext)."""
        self.store = store
        self.loops = loops or Loops()
        self.settings = settings
        self.catalog = catalog
        self.ids = ids
        self.mode = mode
        self.owner = owner_name(mode)
        self.sender = sender or WebhookSender(
            timeout=settings.delivery_timeout_seconds,
            allow_private=settings.allow_private_targets,
            max_connections=settings.delivery_max_connections,
        )
        self.policy = policy or RetryPolicy(schedule=settings.retry_delays)
        self.box = box
        self._lease_ms = int(settings.delivery_lease_seconds * 1000)
        self._last_seq = 0  # the end of the log as ``_watch`` last saw it
        self._growths: deque[_Growth] = deque(maxlen=ACTIVITY_KEPT)
        self._woken = asyncio.Event()  # set when everyone should look (stopping, say)
        self._org_woken: dict[int, asyncio.Event] = {}  # per organisation: its news
        self._poked: set[int] = set()  # handlers changed (or given a replay) since they looked
        self._seen_updated: dict[int, int] = {}  # per handler: updated_ms at the last renewal
        self._idle: dict[int, _Idle] = {}  # the handlers asleep in ``_pause``
        self._ahead: dict[int, _Ahead] = {}  # per handler: its next read, started early
        self._covered: dict[int, int] = {}  # per handler: the log end its last read covered
        self._passed: dict[int, float] = {}  # per handler: when _pass_quiet last moved it
        self._lost: set[int] = set()  # handlers whose task stops after its current step
        self._held_until = 0.0  # (monotonic) when the leases of the last renewal run out
        self._slots: dict[int, asyncio.Semaphore] = {}  # per organisation: requests at once
        self._busy: set[int] = set()  # handlers whose request is out: stopping waits for them
        self._sinks: dict[int, tuple[HandlerSpec, Sink]] = {}  # per handler, while it is served
        self._recording: dict[int, asyncio.Task[Handler | None]] = {}  # per handler: its last
        # delivered batch's bookkeeping, written while the next batch is out
        self._stopping = False
        self._threads = Threads("herald-delivery", STORE_THREADS)

    async def _run(self, work: Callable[..., T], *args: Any) -> T:
        return await self._threads.run(work, *args)

    # -- the loops --------------------------------------------------------------
    async def claim(self) -> list[Handler]:
        """Take or renew the leases of every handler this worker may serve."""
        return await self._run(self.store.claim_handlers, self.owner, now_ms(), self._lease_ms)

    async def run_once(self) -> list[StepResult]:
        """One step for every handler, concurrently; what each did."""
        handlers = await self.claim()
        return list(await asyncio.gather(*(self.step(h.id, h) for h in handlers)))

    async def run(self) -> None:
        """Serve handlers until cancelled; renew leases a few times per lease period."""
        tasks: dict[int, asyncio.Task[None]] = {}
        renew = min(self.settings.delivery_lease_seconds / 3, 2.0)

        async def renewal() -> None:
            started = time.monotonic()
            claimed = {handler.id: handler for handler in await self.claim()}
            self._held_until = started + self.settings.delivery_lease_seconds
            self._poke_changed(claimed.values())
            metrics.DELIVERY_HANDLERS.labels(self.mode).set(len(claimed))
            self._reconcile(tasks, claimed)
            await self._cancel_deleted(tasks)
            await self._watch(renew, tasks)

        try:  # any failure is logged and tried again after a backoff (herald.loops)
            await run_forever(self.loops, "delivery", renewal, 0, max_backoff_seconds=renew)
        finally:
            await self._drain(tasks)

    async def _drain(self, tasks: Mapping[int, asyncio.Task[None]]) -> None:
        """Stop: cancel the handlers that wait, let the requests out finish and be recorded
        (for at most ``HERALD_DELIVERY_DRAIN_SECONDS``), then give up the leases."""
        self._stopping = True
        self._wake()
        for handler_id, task in tasks.items():
            if handler_id not in self._busy:
                task.cancel()
        busy = [task for handler_id, task in tasks.items() if handler_id in self._busy]
        if busy:
            log.info("delivery: stopping; waiting for %d requests to finish", len(busy))
            await asyncio.wait(busy, timeout=self.settings.delivery_drain_seconds)
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        await asyncio.gather(*self._recording.values(), return_exceptions=True)
        with contextlib.suppress(StoreError):
            await self._run(self.store.release_handlers, self.owner)

    async def _cancel_deleted(self, tasks: dict[int, asyncio.Task[None]]) -> None:
        """Cancel the tasks of deleted handlers, requests in flight included: nothing is
        left to record them in, and a slow receiver should not keep them open."""
        for handler_id in list(self._lost):
            task = tasks.get(handler_id)
            if task is None or task.done():
                continue
            if await self._run(self.store.get_handler, handler_id) is None:
                log.info("delivery: handler %d deleted; its request is cancelled", handler_id)
                task.cancel()

    def _reconcile(
        self, tasks: dict[int, asyncio.Task[None]], claimed: Mapping[int, Handler]
    ) -> None:
        """Start a task for each newly claimed handler. A task whose handler was not claimed
        (leased by another worker, disabled, deleted) is not cancelled: it stops after its
        current step, so that no request is cut off after the receiver got it."""
        for handler_id in [h for h, task in tasks.items() if task.done()]:
            ended = tasks.pop(handler_id)
            if not ended.cancelled() and (error := ended.exception()) is not None:
                log.error("delivery: handler %d: task failed", handler_id, exc_info=error)
        self._lost = tasks.keys() - claimed.keys()
        for handler_id in claimed.keys() - tasks.keys():
            tasks[handler_id] = asyncio.create_task(self._serve(claimed[handler_id]))

    async def _watch(self, seconds: float, tasks: Mapping[int, asyncio.Task[None]]) -> None:
        """For ``seconds``, wake the handlers whose organisation's events came into the log
        (the others cost nothing: no read, and one write a second for all their cursors);
        return early when a handler this worker does not serve can be claimed."""
        deadline = time.monotonic() + seconds
        looked = 0.0
        while time.monotonic() < deadline:
            await asyncio.sleep(self.settings.delivery_poll_seconds)
            try:
                await self._follow_log()
                if time.monotonic() - looked >= CLAIMABLE_LOOK_SECONDS:
                    looked = time.monotonic()
                    await self._move_idle()
                    claimable = await self._run(
                        self.store.claimable_handler_ids, self.owner, now_ms()
                    )
                    if any(h not in tasks or tasks[h].done() for h in claimable):
                        return
            except StoreError:
                continue  # the next claim reports it

    async def _follow_log(self) -> None:
        """Note how far the log grew and by whose events; wake those organisations."""
        last_seq = await self._run(self.store.last_seq)
        if last_seq == self._last_seq:
            return
        activity = await self._run(self.store.log_activity, self._last_seq, last_seq, ACTIVITY_SCAN)
        self._growths.append(_Growth(self._last_seq, last_seq, activity))
        self._last_seq = last_seq
        if activity is None:
            self._wake()
            return
        for organisation_id in activity:
            self._wake_organisation(organisation_id)

    async def _move_idle(self) -> None:
        """Move the cursors of the handlers that slept through the log's growth to its end,
        all in one write: their next read and their lag start from there."""
        end = self._last_seq
        quiet = [
            handler_id
            for handler_id, idle in self._idle.items()
            if idle.cursor < end and not self._has_news(idle.handler, idle.seen)
        ]
        if not quiet:
            return
        await self._run(self.store.advance_cursors, self.owner, quiet, end)
        for handler_id in quiet:
            idle = self._idle.get(handler_id)
            if idle is not None and not self._has_news(idle.handler, idle.seen):
                idle.seen = idle.cursor = end  # still asleep: it wants nothing up to here

    def _wake(self) -> None:
        """Wake every handler task waiting in ``_pause``."""
        self._woken.set()
        self._woken = asyncio.Event()
        for organisation_id in list(self._org_woken):
            self._wake_organisation(organisation_id)

    def _wake_organisation(self, organisation_id: int) -> None:
        woken = self._org_woken.pop(organisation_id, None)
        if woken is not None:
            woken.set()

    def _poke_changed(self, claimed: Iterable[Handler]) -> None:
        """Wake the handlers changed since the last renewal: edited, given a replay, or
        moved on by their own steps (harmless: they were busy anyway)."""
        for handler in claimed:
            seen = self._seen_updated.get(handler.id)
            self._seen_updated[handler.id] = handler.updated_ms
            if seen is not None and seen != handler.updated_ms:  # a new one starts afresh
                self._poked.add(handler.id)
                self._wake_organisation(handler.organisation_id)

    def _has_news(self, handler: Handler, seen_seq: int) -> bool:
        """Whether events of the handler's organisation, of a type its filter may want,
        came into the log after ``seen_seq``."""
        if seen_seq >= self._last_seq:
            return False
        if not self._growths or self._growths[0].after > seen_seq:
            return True  # too long ago to tell
        wanted = filter_of(handler.spec.filter).type_ids
        for growth in reversed(self._growths):
            if growth.upto <= seen_seq:
                break
            if growth.activity is None:
                return True
            types = growth.activity.get(handler.organisation_id)
            if types and (wanted is None or not types.isdisjoint(wanted)):
                return True
        return False

    async def _pause(self, handler: Handler, seen_seq: int, until_ms: int | None = None) -> str:
        """Wait until the handler may have work; why it woke: ``news`` (events it may want
        came into the log after ``seen_seq``, as ``_watch`` saw it), ``changed`` (edited or
        given a replay; its state must be read again), or ``time`` (``until_ms`` came, the
        worker stops, or everyone was woken).

        Without ``until_ms`` the handler is idle (its last read found nothing after its
        cursor): ``_move_idle`` may move its cursor while it sleeps. A handler waiting for a
        retry is not: its cursor stays before the events it has yet to deliver."""
        try:
            while not self._stopping and handler.id not in self._lost:
                if handler.id in self._poked:
                    return "changed"
                if self._has_news(handler, seen_seq):
                    return "news"
                seen_seq = self._last_seq
                if until_ms is None:
                    idle = self._idle.setdefault(
                        handler.id, _Idle(handler, seen_seq, handler.cursor_seq)
                    )
                    idle.seen = max(idle.seen, seen_seq)
                woken = self._org_woken.setdefault(handler.organisation_id, asyncio.Event())
                timeout = None if until_ms is None else max(until_ms - now_ms(), 0) / 1000
                everyone = asyncio.ensure_future(self._woken.wait())
                mine = asyncio.ensure_future(woken.wait())
                try:
                    done, _ = await asyncio.wait(
                        (everyone, mine), timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    everyone.cancel()
                    mine.cancel()
                if not done or everyone in done:
                    return "time"
            return "time"
        finally:
            self._idle.pop(handler.id, None)
            self._poked.discard(handler.id)

    async def _serve(self, claimed: Handler) -> None:
        handler_id = claimed.id
        handler: Handler | None = claimed
        try:
            while handler_id not in self._lost and not self._stopping:
                if time.monotonic() >= self._held_until:  # another worker may hold it now
                    handler = None  # and may have moved it on: read it again afterwards
                    await asyncio.sleep(self.settings.delivery_poll_seconds)
                    continue
                seen_seq = self._last_seq
                try:
                    result = await self.step(handler_id, handler, pipelined=True)
                except StoreError:  # one handler's failure must not end its task
                    log.exception("delivery: handler %d: step failed; trying again", handler_id)
                    handler = None
                    await asyncio.sleep(1)
                    continue
                except Exception as exc:  # nor loop hot: recorded as an attempt, backed off
                    log.exception("delivery: handler %d: step failed", handler_id)
                    handler = None
                    with contextlib.suppress(StoreError):
                        await self._step_failed(handler_id, exc)
                    await asyncio.sleep(1)
                    continue
                finally:
                    self._busy.discard(handler_id)
                if result.kind == "gone":
                    return
                handler = result.handler
                if result.kind == "idle" and handler is not None:
                    # idle up to where its read looked: a read started during the last
                    # send may predate events the worker has seen since
                    seen_seq = min(seen_seq, result.seen_seq or 0)
                    await self._pause(handler, seen_seq)
                    handler = None  # read again: edited or disabled while it slept, or moved
                elif result.kind == "waiting" and handler is not None:
                    await self._pause(handler, seen_seq, handler.next_attempt_ms)
                    handler = None  # it may have been changed while waiting
                elif result.kind in ("retry", "rejected"):
                    await asyncio.sleep(self.settings.delivery_poll_seconds)
        finally:
            with contextlib.suppress(Exception):  # logged where it failed
                await asyncio.shield(self._settle(handler_id))
            if ahead := self._ahead.pop(handler_id, None):
                ahead.scan.cancel()
            self._passed.pop(handler_id, None)
            self._covered.pop(handler_id, None)
            await self._close_sink(handler_id)

    async def aclose(self) -> None:
        for handler_id in list(self._sinks):
            await self._close_sink(handler_id)
        await self.sender.aclose()
        await self._threads.aclose()

    async def _sink(self, handler: Handler) -> Sink:
        """The handler's sink, kept (with its connection) while its settings stay the same."""
        kept = self._sinks.get(handler.id)
        if kept is not None and kept[0] == handler.spec:
            return kept[1]
        await self._close_sink(handler.id)
        sink = open_sink(
            handler,
            self.box,
            self.sender,
            allow_private=self.settings.allow_private_targets,
            timeout=self.settings.delivery_timeout_seconds,
        )
        self._sinks[handler.id] = (handler.spec, sink)
        return sink

    async def _close_sink(self, handler_id: int) -> None:
        kept = self._sinks.pop(handler_id, None)
        if kept is not None:
            with contextlib.suppress(Exception):  # a broken connection may fail to close
                await kept[1].aclose()

    # -- one step ---------------------------------------------------------------
    async def step(
        self, handler_id: int, handler: Handler | None = None, *, pipelined: bool = False
    ) -> StepResult:
        """Deliver the next batch of one handler (live first, then replays), if due.

        ``handler``: its state as the previous step returned it, saving a read; None reads it.
        ``pipelined``: a delivered live batch's bookkeeping may still be being written when
        the step returns (the next step's send overlaps it; ``_settle`` waits for it).
        """
        if handler is None:
            if not await self._settle(handler_id):
                return StepResult(handler_id, "gone")
            handler = await self._run(self.store.get_handler, handler_id)
        if handler is None or not handler.spec.enabled or handler.owner != self.owner:
            return StepResult(handler_id, "gone")
        if handler.next_attempt_ms is not None and handler.next_attempt_ms > now_ms():
            return StepResult(handler_id, "waiting", handler=handler)
        handler_filter = filter_of(handler.spec.filter)
        batch = await self._live_batch(handler, handler_filter)
        if batch is None or not batch.items:  # nothing to send: the last batch's record first
            if not await self._settle(handler_id):
                return StepResult(handler_id, "gone")
            if batch is None:
                batch = await self._replay_batch(handler, handler_filter)
        if batch is None:
            covered = self._covered.pop(handler_id, 0)
            return StepResult(handler_id, "idle", handler=handler, seen_seq=covered)
        if not batch.items:
            return StepResult(handler_id, "skipped")
        return await self._deliver(handler, batch, pipelined)

    async def _settle(self, handler_id: int) -> bool:
        """Wait for the handler's bookkeeping still being written, if any; False if it found
        the handler gone (deleted, or its lease lost): nothing more may be sent for it."""
        recording = self._recording.get(handler_id)
        if recording is None:
            return True
        try:
            return await recording is not None
        finally:  # kept until written: stopping waits for it before giving up the lease
            if self._recording.get(handler_id) is recording:
                del self._recording[handler_id]

    async def _live_batch(self, handler: Handler, handler_filter: EventFilter) -> _Batch | None:
        wanted = None if handler_filter.selects_all else _matching(handler_filter)
        cursor = handler.cursor_seq
        waited = False
        for _ in range(MAX_SKIP_CHUNKS):
            (entries, position, complete), log_end = await self._read_log(handler, cursor)
            if not entries and complete and cursor == handler.cursor_seq:
                await self._pass_quiet(handler, log_end)
                return None
            if not entries and complete:
                return _Batch([], cursor)
            items: list[Item] = []  # the read may have looked at other tenants' rows only
            end, full = position, False
            if entries:
                items, end, full = _select(entries, handler.spec, wanted, handler_filter.type_ids)
            if not items:
                cursor = position  # nothing of its own up to where the read looked
                if not await self._settle(handler.id):
                    return None
                moved = await self._run(
                    self.store.advance_cursor,
                    handler.id,
                    self.owner,
                    cursor,
                    handler.organisation_id,
                )
                if not moved:
                    return None
                continue
            if not full and not waited and handler.spec.batch_max_wait_ms > 0:
                wait_ms = handler.spec.batch_max_wait_ms - (now_ms() - _received_ms(items[0]))
                if wait_ms > 0:  # let the batch fill up for at most max_wait_ms
                    waited = True
                    await asyncio.sleep(wait_ms / 1000)
                    continue
            return _Batch(items, end, rest=[e for e in entries if e.seq > end])
        return _Batch([], cursor)

    async def _replay_batch(self, handler: Handler, handler_filter: EventFilter) -> _Batch | None:
        unreadable: list[int] = []  # events whose time cannot be read: skipped, logged
        for replay in await self._run(self.store.pending_replays, handler.id):

            def wanted(item: Item, replay: Replay = replay) -> bool:
                timestamp = _timestamp_ms(item)
                if timestamp is None:
                    unreadable.append(item.event_id)
                    return False
                in_range = replay.from_ms <= timestamp <= replay.until_ms
                return in_range and handler_filter.matches(item.record)

            cursor = replay.cursor_seq
            while cursor < replay.end_seq:  # a scan's worth of the log per read
                entries, cursor, complete = await self._run(
                    self.store.scan_log,
                    cursor,
                    CHUNK,
                    (handler.organisation_id,),
                    replay.end_seq,
                )
                if entries:
                    items, end, _ = _select(entries, handler.spec, wanted, handler_filter.type_ids)
                    if unreadable:
                        await self._skip(handler, replay, unreadable)
                        unreadable.clear()
                    if items:
                        return _Batch(items, end, replay)
                if complete:
                    break
                await self._run(self._advance_replay, handler, replay.id, cursor)
            await self._run(self._advance_replay, handler, replay.id, replay.end_seq)
        return None

    async def _skip(self, handler: Handler, replay: Replay, event_ids: list[int]) -> None:
        """Log, and record in the attempt log, events a replay skips as it cannot place them
        in its time range (stored before dates were bounded)."""
        error = "skipped: the event's timestamp cannot be read"
        log.warning(
            "delivery: replay %d skips events %s: unreadable timestamps", replay.id, event_ids
        )
        skipped = Delivery(
            handler.id,
            handler.organisation_id,
            now_ms(),
            "replay",
            tuple(event_ids),
            None,
            "skipped",
            error,
            0,
        )
        await self._run(self.store.record_delivery, self.owner, skipped, None)

    async def _read_log(self, handler: Handler, cursor: int) -> tuple[LogScan, int]:
        """The handler's log after ``cursor`` (read during the last send if it was), a scan's
        worth of the log at most, and the end of the log as ``_watch`` had seen it before
        the read."""
        ahead = self._ahead.pop(handler.id, None)
        if ahead is not None and (ahead.cursor, ahead.chunk) == (cursor, _chunk(handler)):
            scan, log_end = await ahead.scan, ahead.log_end
        else:
            if ahead is not None:
                ahead.scan.cancel()
            log_end = self._last_seq
            scan = await self._run(
                self.store.scan_log, cursor, _chunk(handler), (handler.organisation_id,)
            )
        self._covered[handler.id] = log_end
        return scan, log_end

    def _read_ahead(self, handler: Handler, cursor: int, rest: list[LogEntry]) -> None:
        """Start reading the log after ``cursor``, the handler's next batch if this one goes;
        ``rest``, what the last read held past ``cursor``, is that batch if it is big enough
        (a store call saved)."""
        chunk = _chunk(handler)
        if len(rest) >= handler.spec.batch_max_events:
            scan: asyncio.Future[LogScan] = asyncio.get_running_loop().create_future()
            scan.set_result(LogScan(rest, rest[-1].seq, complete=False))
        else:
            read = self._run(self.store.scan_log, cursor, chunk, (handler.organisation_id,))
            scan = asyncio.ensure_future(read)
        self._ahead[handler.id] = _Ahead(cursor, chunk, self._last_seq, scan)

    async def _pass_quiet(self, handler: Handler, log_end: int) -> None:
        """Move the cursor of a handler whose read came back empty to ``log_end`` (the end
        of the log seen before that read), at most once a second: its next reads then skip
        the other tenants' events instead of scanning them again."""
        last = self._passed.get(handler.id, 0.0)
        if log_end <= handler.cursor_seq or time.monotonic() - last < QUIET_PASS_SECONDS:
            return
        if not await self._settle(handler.id):
            return
        self._passed[handler.id] = time.monotonic()
        await self._run(
            self.store.advance_cursor, handler.id, self.owner, log_end, handler.organisation_id
        )

    def _advance_replay(self, handler: Handler, replay_id: int, cursor: int) -> None:
        self.store.advance_replay(replay_id, cursor, handler.id, handler.organisation_id)

    async def _deliver(self, handler: Handler, batch: _Batch, pipelined: bool) -> StepResult:
        """Send the batch and record the attempt. ``pipelined``, a delivered live batch is
        recorded in the background: the handler's next send need not wait for the write, and
        that send's bookkeeping waits for this one (the records stay in order, the cursor
        only moves to what the receiver acknowledged; a crash in between sends again)."""
        recording = self._recording.get(handler.id)
        if recording is not None and recording.done() and not await self._settle(handler.id):
            return StepResult(handler.id, "gone")  # (a failed write raises: nothing is sent)
        event_ids = tuple(item.event_id for item in batch.items)
        prefix = f"r{batch.replay.id}" if batch.replay else f"h{handler.id}"
        msg_id = f"{prefix}_{event_ids[0]}_{event_ids[-1]}"
        sink = await self._sink(handler)
        if batch.replay is None:
            self._read_ahead(handler, batch.advance_to, batch.rest)
        replay_id = batch.replay.id if batch.replay else None
        async with self._slot(handler.organisation_id):
            now = datetime.now(UTC)  # signed when sent, however long the slot took
            out = Outgoing(handler, batch.items, msg_id, now, replay_id)
            self._busy.add(handler.id)  # from here on, stopping waits for the step's end
            result = await sink.send(out)
        if not await self._settle(handler.id):  # the one before found the lease lost
            return StepResult(handler.id, "gone")
        kind = "replay" if batch.replay else "live"
        if pipelined and batch.replay is None and result.delivered:
            writing = self._record(handler, kind, event_ids, result, now, batch)
            self._recording[handler.id] = asyncio.create_task(_first(writing))
            metrics.observe_delivery(handler.id, "delivered", _received_ms(batch.items[-1]))
            sent = _delivered(handler, batch.advance_to, to_ms(now))
            return StepResult(handler.id, "delivered", event_ids, None, sent)
        recorded, outcome = await self._record(handler, kind, event_ids, result, now, batch)
        if recorded is None:
            return StepResult(handler.id, "gone")
        metrics.observe_delivery(handler.id, outcome, _received_ms(batch.items[-1]))
        return StepResult(handler.id, outcome, event_ids, replay_id, recorded)

    def _slot(self, organisation_id: int) -> asyncio.Semaphore:
        """The organisation's share of the connections: one tenant's slow receivers cannot
        hold the pool every tenant sends through."""
        slot = self._slots.get(organisation_id)
        if slot is None:
            slot = self._slots[organisation_id] = asyncio.Semaphore(
                self.settings.delivery_connections_per_organisation
            )
        return slot

    async def _record(
        self,
        handler: Handler,
        kind: str,
        event_ids: tuple[int, ...],
        result: SendResult,
        now: datetime,
        batch: _Batch | None = None,
    ) -> tuple[Handler | None, str]:
        """Write the attempt and the handler's progress (with the "handler disabled" notice
        if it disables the handler, in the same transaction); the handler as written (None:
        the lease was lost) and the attempt's outcome."""
        progress = self._progress(handler, batch, result, now)
        reason = progress.disabled_reason
        delivery = Delivery(
            handler_id=handler.id,
            organisation_id=handler.organisation_id,
            at_ms=to_ms(now),
            kind=kind,
            event_ids=event_ids,
            status=result.status,
            outcome="disabled" if reason else result.outcome,
            error=result.error,
            latency_ms=result.latency_ms,
        )
        replay_cursor = None
        if batch is not None and batch.replay and result.delivered:
            replay_cursor = (batch.replay.id, batch.advance_to)
        notice = await self._disabled_notice(handler, reason) if reason else None
        recorded = await self._run(
            self.store.record_delivery, self.owner, delivery, progress, replay_cursor, notice
        )
        if recorded is None:
            return None, delivery.outcome
        if notice is not None:
            metrics.EVENTS_INGESTED.labels(notice[0].provider).inc()
        if reason:
            log.warning("delivery: handler %d disabled: %s", handler.id, reason)
        elif not result.delivered:
            failures = progress.failures
            log.info("delivery: handler %d: %s (failure %d)", handler.id, result.error, failures)
        return recorded, delivery.outcome

    async def _step_failed(self, handler_id: int, error: Exception) -> None:
        """Record a step that raised (a bug, or data it could not handle) as a failed
        attempt: in the log with its error, backed off by the retry policy, in the status."""
        if not await self._settle(handler_id):
            return
        handler = await self._run(self.store.get_handler, handler_id)
        if handler is None or not handler.spec.enabled or handler.owner != self.owner:
            return
        result = SendResult(None, f"internal error: {type(error).__name__}: {error}"[:500], 0)
        await self._record(handler, "live", (), result, datetime.now(UTC))

    def _progress(
        self, handler: Handler, batch: _Batch | None, result: SendResult, now: datetime
    ) -> HandlerProgress:
        at = to_ms(now)
        if result.delivered and batch is not None:
            cursor = handler.cursor_seq if batch.replay else batch.advance_to
            return HandlerProgress(cursor_seq=cursor, last_success_ms=at)
        failures = handler.failures + 1
        failing_since = handler.failing_since_ms or at
        next_attempt = self.policy.next_attempt(
            failures,
            now,
            result.retry_after,
            failing_since=datetime.fromtimestamp(failing_since / 1000, UTC),
            retention=timedelta(milliseconds=handler.spec.retention_ms),
        )
        disabled = None
        if result.gone:  # Standard Webhooks: the receiver wants no more
            disabled = "the receiver answered 410 Gone"
        elif next_attempt is None:
            disabled = (
                f"failing since {format_ms(failing_since)}, longer than the handler's "
                f"retention; last error: {result.error}"
            )
        return HandlerProgress(
            cursor_seq=handler.cursor_seq,
            failures=failures,
            failing_since_ms=failing_since,
            next_attempt_ms=to_ms(next_attempt) if next_attempt else None,
            last_error=result.error,
            disabled_reason=disabled,
        )

    async def _disabled_notice(self, handler: Handler, reason: str) -> tuple[NewEvent, int] | None:
        """The event telling the tenant, in its own log, that a handler is disabled."""
        organisation = await self._run(self.store.get_organisation, handler.organisation_id)
        if organisation is None:
            return None
        event = build_event(
            EventIn(
                event_type=TypeRef(id=HANDLER_DISABLED_TYPE),
                description=f"Event handler {handler.spec.name!r} disabled: {reason}"[:4096],
                detail={"event_handler": {"id": handler.id, "name": handler.spec.name}},
            ),
            organisation=OrganisationRef(id=organisation.id, name=organisation.name),
            catalog=self.catalog,
            received_ms=now_ms(),
            internal=True,
            provider="herald",
        )
        if isinstance(event, list):  # the catalogue lacks the type: a packaging error
            log.error("delivery: cannot record the disabled event: %s", event)
            return None
        return event, self.ids.next_ids(1)[0]


async def _first(recording: Awaitable[tuple[Handler | None, str]]) -> Handler | None:
    return (await recording)[0]


def _delivered(handler: Handler, cursor_seq: int, at_ms: int) -> Handler:
    """The handler as the bookkeeping of a delivered batch writes it (being written)."""
    return dataclasses.replace(
        handler,
        cursor_seq=cursor_seq,
        failures=0,
        failing_since_ms=None,
        next_attempt_ms=None,
        last_error=None,
        last_success_ms=at_ms,
    )


def _select(
    entries: list[LogEntry],
    spec: HandlerSpec,
    wanted: Callable[[Item], bool] | None,
    type_ids: frozenset[int] | None = None,
) -> tuple[list[Item], int, bool]:
    """The first wanted entries (None: all) that fit one batch of ``spec``, the cursor past
    them (or past all the entries if the batch is not full), and whether it is full. A batch
    holds ``batch_max_events`` at most and, past its first, records of ``batch_max_bytes``
    (else ``MAX_BATCH_BODY_BYTES``) at most, each counted as an NDJSON line. Entries not of
    ``type_ids`` (if set) are skipped unparsed."""
    limit = spec.batch_max_events
    max_bytes = MAX_BATCH_BODY_BYTES if spec.batch_max_bytes is None else spec.batch_max_bytes
    items: list[Item] = []
    size = 0
    for entry in entries:
        if type_ids is not None and entry.type_id not in type_ids:
            continue
        item = Item(entry.seq, entry.event_id, entry.body)
        if wanted is None or wanted(item):
            size += len(entry.body) + 1
            if items and size > max_bytes:  # it starts the next batch: stop before it
                return items, entry.seq - 1, True
            items.append(item)
            if len(items) == limit:
                return items, entry.seq, True
    return items, entries[-1].seq, False


def _chunk(handler: Handler) -> int:
    """How many log entries to read for one batch: if the filter passes all, the batch or
    ``READ_AHEAD``, whichever is more."""
    selects_all = filter_of(handler.spec.filter).selects_all
    return max(handler.spec.batch_max_events, READ_AHEAD) if selects_all else CHUNK


def _matching(handler_filter: EventFilter) -> Callable[[Item], bool]:
    return lambda item: handler_filter.matches(item.record)


def _received_ms(item: Item) -> int:
    received = item.record.get("received")
    try:
        return to_ms(parse_timestamp(received)) if isinstance(received, str) else now_ms()
    except (ValueError, OverflowError):  # an event stored before dates were bounded
        return now_ms()


def _timestamp_ms(item: Item) -> int | None:
    """The event's time, or None if it cannot be read (stored before dates were bounded)."""
    timestamp = item.record.get("timestamp")
    try:
        return to_ms(parse_timestamp(timestamp)) if isinstance(timestamp, str) else None
    except (ValueError, OverflowError):
        return None


@contextlib.asynccontextmanager
async def in_process(
    store: Store,
    settings: Settings,
    catalog: Catalog,
    ids: IdGenerator,
    box: SecretBox,
    loops: Loops | None = None,
    mode: str = "serve",
) -> AsyncIterator[DeliveryWorker | None]:
    """Run delivery for as long as the block lasts: inside ``herald serve`` (if enabled) or
    as ``herald worker``. Leaving the block drains: the requests out finish first."""
    if mode == "serve" and not settings.delivery_enabled:
        yield None
        return
    worker = DeliveryWorker(store, settings, catalog, ids, mode=mode, box=box, loops=loops)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await worker.aclose()
