"""What one delivery step did for one handler, and why a sleeping handler woke."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from herald.handlers.types import Handler


class Outcome(StrEnum):
    """What a step did (its value is the attempt log's and the metrics' word for it)."""

    IDLE = "idle"  # nothing after the cursor it may want
    WAITING = "waiting"  # backing off until its next attempt
    SKIPPED = "skipped"  # moved past events it does not want
    DELIVERED = "delivered"
    RETRY = "retry"  # the attempt failed; tried again after a backoff
    REJECTED = "rejected"  # the receiver refused the batch
    DISABLED = "disabled"  # the attempt disabled the handler
    GONE = "gone"  # deleted, disabled or its lease lost: its task stops


class Woke(StrEnum):
    """Why a sleeping handler woke."""

    NEWS = "news"  # events it may want came into the log
    CHANGED = "changed"  # edited or given a replay: its state must be read again
    TIME = "time"  # its next attempt came, the worker stops, or everyone was woken


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one step did for one handler."""

    handler_id: int
    kind: Outcome
    event_ids: tuple[int, ...] = ()
    replay_id: int | None = None
    handler: Handler | None = None  # as the step found or wrote it: the next step's state
    seen_seq: int | None = None  # idle: the end of the log its read covered
