"""The delivery worker: serves each leased handler from its own task.

``run_once()`` does one pass over every handler (tests drive it); ``run()`` is the loop
``herald serve`` and ``herald worker`` run, with one task per handler so that a slow or dead
receiver never delays another handler. Each task keeps its handler as the last write
returned it, and an idle one sleeps until the log grows: ``run()`` looks every
``HERALD_DELIVERY_POLL_SECONDS`` for new events (``follower.LogWatcher``) and for handlers to
take up.

A step of one handler is made of parts with one job each: ``batches.BatchReader`` reads its
next batch after its cursor (or a replay's), ``dispatcher.Dispatcher`` sends it through the
handler's sink, ``recorder.Recorder`` writes the attempt with the handler's progress (its
cursor, compare-and-set on the lease) in one transaction. ``leases.Leases`` holds the
handlers' leases; what the worker keeps about a handler between steps is one
``runtime.HandlerRuntime``; what a step did is an ``outcome.Outcome``.

A handler task is never cancelled in the middle of a step (only when the worker stops): a
request cut off after the receiver got it would be sent again. A task whose handler this
worker no longer holds stops after its current step, whose bookkeeping the store refuses if
another worker holds the lease by then; and while the leases cannot be renewed (the store
unreachable), no task starts a step once the last renewal's lease period has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, TypeVar

from herald import metrics
from herald.catalog import Catalog
from herald.config import Settings
from herald.delivery.batches import Batch, BatchReader, received_ms
from herald.delivery.dispatcher import Dispatcher
from herald.delivery.leases import Leases
from herald.delivery.outcome import Outcome, StepResult, Woke
from herald.delivery.recorder import MAX_UNSETTLED, Recorder
from herald.delivery.retry import RetryPolicy
from herald.delivery.runtime import HandlerRuntime, Idle
from herald.delivery.webhook import WebhookSender
from herald.follower import LogReader, LogWatcher
from herald.handlers.filters import handler_filter as filter_of
from herald.handlers.types import Handler
from herald.ids import IdGenerator
from herald.loops import Loops, run_forever
from herald.sealing import SecretBox
from herald.store import Store, StoreError
from herald.threads import Threads
from herald.timefmt import now_ms

log = logging.getLogger("herald.delivery")
T = TypeVar("T")

STORE_THREADS = 16  # store calls of the worker's handlers running at once
CLAIMABLE_LOOK_SECONDS = 0.5  # how often _watch looks for handlers to take up


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
        self.mode = mode
        self.sender = sender or WebhookSender(
            timeout=settings.delivery_timeout_seconds,
            allow_private=settings.allow_private_targets,
            max_connections=settings.delivery_max_connections,
        )
        self._threads = Threads("herald-delivery", STORE_THREADS)
        self.leases = Leases(store, self._threads.run, mode, settings.delivery_lease_seconds)
        self.owner = self.leases.owner
        reader = LogReader(store, self._threads.run)
        self.watcher = LogWatcher(reader)
        self.batches = BatchReader(reader, self.watcher, self.owner)
        self.dispatcher = Dispatcher(settings, self.sender, box)
        policy = policy or RetryPolicy(schedule=settings.retry_delays)
        self.recorder = Recorder(store, self._threads.run, self.owner, policy, catalog, ids)
        self._handlers: dict[int, HandlerRuntime] = {}
        self._stopping = False

    async def _run(self, work: Callable[..., T], *args: Any) -> T:
        return await self._threads.run(work, *args)

    def _runtime(self, handler_id: int) -> HandlerRuntime:
        runtime = self._handlers.get(handler_id)
        if runtime is None:
            runtime = self._handlers[handler_id] = HandlerRuntime(handler_id)
        return runtime

    # -- the loops --------------------------------------------------------------
    async def run_once(self) -> list[StepResult]:
        """One step for every handler, concurrently; what each did."""
        handlers = await self.leases.claim()
        return list(await asyncio.gather(*(self.step(h.id, h) for h in handlers)))

    async def run(self) -> None:
        """Serve handlers until cancelled; renew leases a few times per lease period."""
        tasks: dict[int, asyncio.Task[None]] = {}
        renew = min(self.settings.delivery_lease_seconds / 3, 2.0)

        async def renewal() -> None:
            claimed = {handler.id: handler for handler in await self.leases.claim()}
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
        self.watcher.wake()
        busy = {h for h, runtime in self._handlers.items() if runtime.busy}
        for handler_id, task in tasks.items():
            if handler_id not in busy:
                task.cancel()
        out = [task for handler_id, task in tasks.items() if handler_id in busy]
        if out:
            log.info("delivery: stopping; waiting for %d requests to finish", len(out))
            await asyncio.wait(out, timeout=self.settings.delivery_drain_seconds)
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        recording = [r.recording for r in self._handlers.values() if r.recording is not None]
        await asyncio.gather(*recording, return_exceptions=True)
        await self.leases.release()

    async def _cancel_deleted(self, tasks: dict[int, asyncio.Task[None]]) -> None:
        """Cancel the tasks of deleted handlers, requests in flight included: nothing is
        left to record them in, and a slow receiver should not keep them open."""
        for handler_id in [h for h, runtime in self._handlers.items() if runtime.lost]:
            task = tasks.get(handler_id)
            if task is None or task.done():
                continue
            if await self._run(self.store.handlers.get, handler_id) is None:
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
        for handler_id, runtime in self._handlers.items():
            runtime.lost = handler_id in tasks and handler_id not in claimed
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
                await self.watcher.poll()
                if time.monotonic() - looked >= CLAIMABLE_LOOK_SECONDS:
                    looked = time.monotonic()
                    await self._move_idle()
                    claimable = await self.leases.claimable()
                    if any(h not in tasks or tasks[h].done() for h in claimable):
                        return
            except StoreError:
                continue  # the next claim reports it

    async def _move_idle(self) -> None:
        """Move the cursors of the handlers that slept through the log's growth to its end,
        all in one write: their next read and their lag start from there."""
        end = self.watcher.end
        quiet = [r for r in self._handlers.values() if self._quiet(r.idle, end)]
        if not quiet:
            return
        await self._run(self.store.handlers.advance_cursors, self.owner, [r.id for r in quiet], end)
        for runtime in quiet:
            idle = runtime.idle
            if idle is not None and not self._has_news(idle.handler, idle.seen):
                idle.seen = idle.cursor = end  # still asleep: it wants nothing up to here

    def _quiet(self, idle: Idle | None, end: int) -> bool:
        """Whether a handler still asleep slept through the log's growth to ``end``."""
        return (
            idle is not None and idle.cursor < end and not self._has_news(idle.handler, idle.seen)
        )

    def _poke_changed(self, claimed: Iterable[Handler]) -> None:
        """Wake the handlers changed since the last renewal: edited, given a replay, or
        moved on by their own steps (harmless: they were busy anyway)."""
        for handler in claimed:
            runtime = self._runtime(handler.id)
            seen, runtime.seen_updated = runtime.seen_updated, handler.updated_ms
            if seen is not None and seen != handler.updated_ms:  # a new one starts afresh
                runtime.poked = True
                self.watcher.wake_organisation(handler.organisation_id)

    def _has_news(self, handler: Handler, seen_seq: int) -> bool:
        """Whether events of the handler's organisation, of a type its filter may want,
        came into the log after ``seen_seq``."""
        wanted = filter_of(handler.spec.filter).type_ids
        return self.watcher.has_news(handler.organisation_id, wanted, seen_seq)

    async def _pause(self, handler: Handler, seen_seq: int, until_ms: int | None = None) -> Woke:
        """Wait until the handler may have work; why it woke.

        Without ``until_ms`` the handler is idle (its last read found nothing after its
        cursor): ``_move_idle`` may move its cursor while it sleeps. A handler waiting for a
        retry is not: its cursor stays before the events it has yet to deliver."""
        runtime = self._runtime(handler.id)
        try:
            while not self._stopping and not runtime.lost:
                if runtime.poked:
                    return Woke.CHANGED
                if self._has_news(handler, seen_seq):
                    return Woke.NEWS
                seen_seq = self.watcher.end
                if until_ms is None:
                    if runtime.idle is None:
                        runtime.idle = Idle(handler, seen_seq, handler.cursor_seq)
                    runtime.idle.seen = max(runtime.idle.seen, seen_seq)
                timeout = None if until_ms is None else max(until_ms - now_ms(), 0) / 1000
                if not await self.watcher.wait(handler.organisation_id, timeout):
                    return Woke.TIME
            return Woke.TIME
        finally:
            runtime.idle = None
            runtime.poked = False

    async def _serve(self, claimed: Handler) -> None:
        handler_id = claimed.id
        runtime = self._runtime(handler_id)
        handler: Handler | None = claimed
        try:
            while not runtime.lost and not self._stopping:
                if not self.leases.held():  # another worker may hold it now
                    handler = None  # and may have moved it on: read it again afterwards
                    await asyncio.sleep(self.settings.delivery_poll_seconds)
                    continue
                seen_seq = self.watcher.end
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
                        if await self.recorder.settle(runtime):
                            await self.recorder.record_failed_step(handler_id, exc)
                    await asyncio.sleep(1)
                    continue
                finally:
                    runtime.busy = False
                if result.kind is Outcome.GONE:
                    return
                handler = result.handler
                if result.kind is Outcome.IDLE and handler is not None:
                    # idle up to where its read looked: a read started during the last
                    # send may predate events the worker has seen since
                    seen_seq = min(seen_seq, result.seen_seq or 0)
                    await self._pause(handler, seen_seq)
                    handler = None  # read again: edited or disabled while it slept, or moved
                elif result.kind is Outcome.WAITING and handler is not None:
                    await self._pause(handler, seen_seq, handler.next_attempt_ms)
                    handler = None  # it may have been changed while waiting
                elif result.kind in (Outcome.RETRY, Outcome.REJECTED):
                    await asyncio.sleep(self.settings.delivery_poll_seconds)
        finally:
            with contextlib.suppress(Exception):  # logged where it failed
                await asyncio.shield(self.recorder.settle(runtime))
            runtime.forget_reads()
            await self.dispatcher.close_sink(runtime)

    async def aclose(self) -> None:
        for runtime in self._handlers.values():
            await self.dispatcher.close_sink(runtime)
        await self.sender.aclose()
        await self._threads.aclose()

    # -- one step ---------------------------------------------------------------
    async def step(
        self, handler_id: int, handler: Handler | None = None, *, pipelined: bool = False
    ) -> StepResult:
        """Deliver the next batch of one handler (live first, then replays), if due.

        ``handler``: its state as the previous step returned it, saving a read; None reads it.
        ``pipelined``: a delivered live batch's bookkeeping may still be being written when
        the step returns (the next step's send overlaps it; ``Recorder.settle`` waits for it).
        """
        runtime = self._runtime(handler_id)
        settle = self.recorder.settle
        if handler is None:
            if not await settle(runtime):
                return StepResult(handler_id, Outcome.GONE)
            handler = await self._run(self.store.handlers.get, handler_id)
        if handler is None or not handler.spec.enabled or handler.owner != self.owner:
            return StepResult(handler_id, Outcome.GONE)
        if handler.next_attempt_ms is not None and handler.next_attempt_ms > now_ms():
            return StepResult(handler_id, Outcome.WAITING, handler=handler)
        handler_filter = filter_of(handler.spec.filter)
        batch = await self.batches.live(runtime, handler, handler_filter, settle)
        if batch is None or not batch.items:  # nothing to send: the last batch's record first
            if not await settle(runtime):
                return StepResult(handler_id, Outcome.GONE)
            if batch is None:
                batch = await self.batches.replay(
                    handler, handler_filter, self.recorder.record_skipped
                )
        if batch is None:
            covered, runtime.covered = runtime.covered, 0
            return StepResult(handler_id, Outcome.IDLE, handler=handler, seen_seq=covered)
        if not batch.items:
            return StepResult(handler_id, Outcome.SKIPPED)
        return await self._deliver(runtime, handler, batch, pipelined)

    async def _deliver(
        self, runtime: HandlerRuntime, handler: Handler, batch: Batch, pipelined: bool
    ) -> StepResult:
        """Send the batch and record the attempt. ``pipelined``, a delivered live batch is
        recorded in the background: the handler's next sends need not wait for the write,
        and the batches delivered meanwhile are written together after it (the records stay
        in order, the cursor only moves to what the receiver acknowledged; a crash in
        between sends them again). Other outcomes wait for those writes, then are written."""
        if not await self.recorder.settle_written(runtime):
            return StepResult(handler.id, Outcome.GONE)  # (a failed write raises: none sent)
        if runtime.unsettled >= MAX_UNSETTLED and not await self.recorder.settle(runtime):
            return StepResult(handler.id, Outcome.GONE)
        event_ids = tuple(item.event_id for item in batch.items)
        prefix = f"r{batch.replay.id}" if batch.replay else f"h{handler.id}"
        msg_id = f"{prefix}_{event_ids[0]}_{event_ids[-1]}"
        sink = await self.dispatcher.sink(runtime, handler)
        if batch.replay is None:
            self.batches.read_ahead(runtime, handler, batch.advance_to, batch.rest)
        replay_id = batch.replay.id if batch.replay else None
        result, now = await self.dispatcher.send(
            runtime, sink, handler, batch.items, msg_id, replay_id
        )
        if pipelined and batch.replay is None and result.delivered:
            if not await self.recorder.settle_written(runtime):
                return StepResult(handler.id, Outcome.GONE)  # the write before lost the lease
            sent = self.recorder.record_later(runtime, handler, event_ids, result, now, batch)
            metrics.observe_delivery(handler.id, "delivered", received_ms(batch.items[-1]))
            return StepResult(handler.id, Outcome.DELIVERED, event_ids, None, sent)
        if not await self.recorder.settle(runtime):  # the one before found the lease lost
            return StepResult(handler.id, Outcome.GONE)
        kind = "replay" if batch.replay else "live"
        recorded, outcome = await self.recorder.record(handler, kind, event_ids, result, now, batch)
        if recorded is None:
            return StepResult(handler.id, Outcome.GONE)
        metrics.observe_delivery(handler.id, outcome, received_ms(batch.items[-1]))
        return StepResult(handler.id, outcome, event_ids, replay_id, recorded)


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
