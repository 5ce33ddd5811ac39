"""The delivery worker's bookkeeping: each attempt, with the handler's progress, in one write.

Delivered live batches are recorded in the background (``record_later``) while the
handler's next batches go out: one write at a time per handler, and the batches
acknowledged while it runs are written together by the next (a group commit: their
attempts and the cursor past the last of them, in one transaction). At most
``MAX_UNSETTLED`` acknowledged batches wait for their write; ``settle`` waits for them all
before anything else is written for that handler. The records stay in order and the cursor
only ever moves to what the receiver acknowledged: a crash before the write sends those
batches again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import UTC, datetime, timedelta

from herald.catalog import Catalog
from herald.delivery.batches import Batch
from herald.delivery.outcome import Outcome
from herald.delivery.retry import RetryPolicy
from herald.delivery.runtime import HandlerRuntime
from herald.delivery.webhook import SendResult
from herald.events.writer import EventWriter
from herald.follower import Runner
from herald.handlers.types import Delivery, Handler, HandlerProgress, Replay
from herald.ids import IdGenerator
from herald.model import EventIn, NewEvent, OrganisationRef, TypeRef
from herald.store import Store
from herald.timefmt import format_ms, now_ms, to_ms

log = logging.getLogger("herald.delivery")

HANDLER_DISABLED_TYPE = 2000
MAX_UNSETTLED = 8  # delivered batches of a handler whose bookkeeping may still be unwritten


class Recorder:
    """Writes a handler's attempts and progress for the lease ``owner``."""

    def __init__(
        self,
        store: Store,
        run: Runner,
        owner: str,
        policy: RetryPolicy,
        catalog: Catalog,
        ids: IdGenerator,
    ) -> None:
        self.store = store
        self.run = run
        self.owner = owner
        self.policy = policy
        self.catalog = catalog
        self.ids = ids
        self.writer = EventWriter(store, ids, catalog)

    async def settle(self, runtime: HandlerRuntime) -> bool:
        """Wait for the handler's bookkeeping still being written, if any; False if it found
        the handler gone (deleted, or its lease lost): nothing more may be sent for it."""
        recording = runtime.recording
        if recording is None:
            return True
        try:
            return await recording is not None
        finally:  # kept until written: stopping waits for it before giving up the lease
            if runtime.recording is recording:
                runtime.recording = None

    async def settle_written(self, runtime: HandlerRuntime) -> bool:
        """``settle`` if the handler's write has finished (no wait): False if it found the
        handler gone; a failed write raises."""
        recording = runtime.recording
        return recording is None or not recording.done() or await self.settle(runtime)

    def record_later(
        self,
        runtime: HandlerRuntime,
        handler: Handler,
        event_ids: tuple[int, ...],
        result: SendResult,
        now: datetime,
        batch: Batch,
    ) -> Handler:
        """Record a delivered live batch in the background, with the others delivered
        while the write before runs; the handler as it will be written."""
        at = to_ms(now)
        runtime.unrecorded.append(self._attempt(handler, "live", event_ids, result, now))
        runtime.progress = HandlerProgress(cursor_seq=batch.advance_to, last_success_ms=at)
        if runtime.recording is None:
            runtime.recording = asyncio.create_task(self._write_delivered(runtime))
        return delivered(handler, batch.advance_to, at)

    async def _write_delivered(self, runtime: HandlerRuntime) -> Handler | None:
        """Write the delivered batches' attempts and progress, a group per write, until
        none is left; the handler as last written (None: the lease was lost)."""
        written: Handler | None = None
        try:
            while runtime.unrecorded and runtime.progress is not None:
                group, runtime.unrecorded = runtime.unrecorded, []
                runtime.writing = len(group)
                written = await self.run(
                    self.store.handlers.record_delivery,
                    self.owner,
                    group[-1],
                    runtime.progress,
                    None,
                    group[:-1],
                )
                if written is None:
                    return None
            return written
        finally:  # what is left unwritten is sent again (from the cursor written last)
            runtime.writing = 0
            if written is None:
                runtime.unrecorded.clear()

    def _attempt(
        self,
        handler: Handler,
        kind: str,
        event_ids: tuple[int, ...],
        result: SendResult,
        now: datetime,
        outcome: Outcome = Outcome.DELIVERED,
    ) -> Delivery:
        return Delivery(
            handler_id=handler.id,
            organisation_id=handler.organisation_id,
            at_ms=to_ms(now),
            kind=kind,
            event_ids=event_ids,
            status=result.status,
            outcome=outcome.value,
            error=result.error,
            latency_ms=result.latency_ms,
        )

    async def record(
        self,
        handler: Handler,
        kind: str,
        event_ids: tuple[int, ...],
        result: SendResult,
        now: datetime,
        batch: Batch | None = None,
    ) -> tuple[Handler | None, Outcome]:
        """Write the attempt and the handler's progress (with the "handler disabled" notice
        if it disables the handler, in the same transaction); the handler as written (None:
        the lease was lost) and the attempt's outcome."""
        progress = self.progress(handler, batch, result, now)
        reason = progress.disabled_reason
        outcome = Outcome.DISABLED if reason else Outcome(result.outcome)
        delivery = self._attempt(handler, kind, event_ids, result, now, outcome)
        replay_cursor = None
        if batch is not None and batch.replay and result.delivered:
            replay_cursor = (batch.replay.id, batch.advance_to)
        notice = await self._disabled_notice(handler, reason) if reason else None
        if notice is None:
            recorded = await self.run(
                self.store.handlers.record_delivery, self.owner, delivery, progress, replay_cursor
            )
        else:  # the writer appends the notice in the transaction that disables the handler
            recording = self.store.handlers.recording(self.owner, delivery, progress, replay_cursor)
            recorded = await self.run(self.writer.append_with, [notice], recording)
        if recorded is None:
            return None, outcome
        if reason:
            log.warning("delivery: handler %d disabled: %s", handler.id, reason)
        elif not result.delivered:
            failures = progress.failures
            log.info("delivery: handler %d: %s (failure %d)", handler.id, result.error, failures)
        return recorded, outcome

    async def record_failed_step(self, handler_id: int, error: Exception) -> None:
        """Record a step that raised (a bug, or data it could not handle) as a failed
        attempt: in the log with its error, backed off by the retry policy, in the status."""
        handler = await self.run(self.store.handlers.get, handler_id)
        if handler is None or not handler.spec.enabled or handler.owner != self.owner:
            return
        result = SendResult(None, f"internal error: {type(error).__name__}: {error}"[:500], 0)
        await self.record(handler, "live", (), result, datetime.now(UTC))

    async def record_skipped(self, handler: Handler, replay: Replay, event_ids: list[int]) -> None:
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
        await self.run(self.store.handlers.record_delivery, self.owner, skipped, None)

    def progress(
        self, handler: Handler, batch: Batch | None, result: SendResult, now: datetime
    ) -> HandlerProgress:
        """The handler's progress after an attempt: its cursor moved, or a failure backed
        off by the retry policy (and the reason it is disabled, if it is)."""
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

    async def _disabled_notice(self, handler: Handler, reason: str) -> NewEvent | None:
        """The event telling the tenant, in its own log, that a handler is disabled."""
        organisation = await self.run(self.store.organisations.get, handler.organisation_id)
        if organisation is None:
            return None
        event = self.writer.build(
            EventIn(
                event_type=TypeRef(id=HANDLER_DISABLED_TYPE),
                description=f"Event handler {handler.spec.name!r} disabled: {reason}"[:4096],
                detail={"event_handler": {"id": handler.id, "name": handler.spec.name}},
            ),
            organisation=OrganisationRef(id=organisation.id, name=organisation.name),
            received_ms=now_ms(),
            internal=True,
            provider="herald",
        )
        if isinstance(event, list):  # the catalogue lacks the type: a packaging error
            log.error("delivery: cannot record the disabled event: %s", event)
            return None
        return event


def delivered(handler: Handler, cursor_seq: int, at_ms: int) -> Handler:
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
