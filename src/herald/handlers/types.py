"""An event handler, what a tenant sets on it, its attempts and replays."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    """What a tenant sets on an event handler."""

    name: str
    url: str
    format: str = "native"
    filter: str = ""  # which events it wants, in q syntax (query.syntax); empty: all
    batch_max_events: int = 1
    batch_max_wait_ms: int = 0
    enabled: bool = True
    retention_ms: int = 3 * 86_400_000
    type: str = "webhook"  # or a broker sink: mqtt, nats, amqp, s3 (delivery.sinks)
    settings: str = "{}"  # the sink's settings, a JSON object (topic template, bucket...)
    credentials: str | None = None  # the sink's credentials, a JSON object, sealed
    batch_max_bytes: int | None = None  # the most record bytes a batch carries; None: any


@dataclass(frozen=True, slots=True)
class Handler:
    """An event handler with its cursor over the log, retry state and lease."""

    id: int
    organisation_id: int
    spec: HandlerSpec
    disabled_reason: str | None
    secret: str
    previous_secret: str | None
    previous_secret_until_ms: int | None
    cursor_seq: int
    failures: int
    failing_since_ms: int | None
    next_attempt_ms: int | None
    last_success_ms: int | None
    last_error: str | None
    owner: str | None
    lease_until_ms: int | None
    created_ms: int
    updated_ms: int


@dataclass(frozen=True, slots=True)
class HandlerProgress:
    """A handler's delivery state after an attempt, written with the attempt."""

    cursor_seq: int
    failures: int = 0
    failing_since_ms: int | None = None
    next_attempt_ms: int | None = None
    last_success_ms: int | None = None
    last_error: str | None = None
    disabled_reason: str | None = None  # set: the handler is disabled


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt of the log: ``kind`` live, replay or test; ``outcome`` delivered,
    retry (timeouts, connection errors, 408, 429, 5xx), rejected (other answers), disabled
    (the attempt disabled the handler) or skipped (a replay could not place the events)."""

    handler_id: int
    organisation_id: int  # the handler's: bookkeeping writes only where both match
    at_ms: int
    kind: str
    event_ids: tuple[int, ...]
    status: int | None
    outcome: str
    error: str | None
    latency_ms: int
    id: int = 0


@dataclass(frozen=True, slots=True)
class Replay:
    """A range of the log (by event time) delivered again, beside the live cursor."""

    id: int
    handler_id: int
    from_ms: int
    until_ms: int
    cursor_seq: int
    end_seq: int
    created_ms: int
    done_ms: int | None
