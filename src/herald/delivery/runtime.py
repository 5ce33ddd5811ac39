"""What the delivery worker keeps about one handler it serves, between its steps."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from herald.delivery.sinks import Sink
from herald.events.types import LogScan
from herald.handlers.types import Handler, HandlerSpec


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
    recording: asyncio.Task[Handler | None] | None = None  # its last delivered batch's
    # bookkeeping, written while the next batch is out

    def forget_reads(self) -> None:
        """Drop what its task kept about the log (the task ends)."""
        if self.ahead is not None:
            self.ahead.scan.cancel()
        self.ahead = None
        self.passed = 0.0
        self.covered = 0
