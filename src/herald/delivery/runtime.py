"""What the delivery worker keeps about one handler it serves, between its steps."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from herald.delivery.sinks import Sink
from herald.events.types import LogScan
from herald.handlers.types import Delivery, Handler, HandlerProgress, HandlerSpec


@dataclass(slots=True)
class Idle:
    """A handler asleep: nothing it may want came into the log up to ``seen``; its cursor
    is at ``cursor`` or later."""

    handler: Handler
    seen: int
    cursor: int


@dataclass(frozen=True, slots=True)
class Ahead:
    """A read of a handler's log started before it was needed (during a send)."""

    cursor: int
    chunk: int
    filter: str  # the handler's filter it selects with
    log_end: int  # the end of the log as the watcher had seen it when the read started
    scan: asyncio.Future[LogScan]


@dataclass(eq=False, slots=True)
class HandlerRuntime:
    """One handler's runtime state in this worker (one object instead of a dict per field)."""

    id: int
    seen_updated: int | None = None  # its updated_ms at the last renewal
    poked: bool = False  # changed (or given a replay) since it last looked
    lost: bool = False  # no longer leased here: its task stops after its current step
    busy: bool = False  # its request is out: stopping waits for it
    idle: Idle | None = None  # asleep in ``DeliveryWorker.pause``
    ahead: Ahead | None = None  # its next read, started early
    covered: int = 0  # the end of the log its last read covered
    passed: float = 0.0  # (monotonic) when its cursor last followed the end of the log
    sink: tuple[HandlerSpec, Sink] | None = None  # kept while its settings stay the same
    recording: asyncio.Task[Handler | None] | None = None  # the bookkeeping of its
    # delivered batches, written while the next ones are out (``Recorder.record_later``)
    unrecorded: list[Delivery] = field(default_factory=list)  # delivered, to be written
    progress: HandlerProgress | None = None  # the progress the last of them makes
    writing: int = 0  # delivered batches in the write under way

    @property
    def unsettled(self) -> int:
        """Delivered batches whose bookkeeping is not written yet."""
        return len(self.unrecorded) + self.writing

    def forget_reads(self) -> None:
        """Drop what its task kept about the log (the task ends)."""
        if self.ahead is not None:
            self.ahead.scan.cancel()
        self.ahead = None
        self.passed = 0.0
        self.covered = 0
