"""What the API answers, as models: ``api/openapi.py`` puts them in the document.

The handler and event-statistics answers are built by these models themselves
(``HandlerOut.of`` and its siblings, ``Stats``, then ``answer``): the shape is declared
once, for the answer and the document.
The endpoint routes' answers are TypedDicts their builders return (``devices.answers``).
The event routes serialise stored records as they are (orjson, no response validation on
the hot path); the models here say what that data is. A test checks real answers against
them (schemathesis' response conformance).
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from herald.delivery.status import HandlerState, HandlerStatus
from herald.handlers.types import Delivery, Handler, Replay
from herald.timefmt import format_ms


def answer(model: BaseModel) -> dict[str, Any]:
    """A model as the JSON object answered: by alias, without the fields left unset."""
    return model.model_dump(mode="json", by_alias=True, exclude_unset=True)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class FieldErrorOut(BaseModel):
    field: str = Field(description="The field, dotted (``event_type.id``), or a parameter.")
    reason: str
    index: int | None = Field(default=None, description="The item of a batch, when one.")


class Problem(BaseModel):
    """An RFC 9457 problem document (``application/problem+json``)."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldErrorOut] | None = None


class Level(_Open):
    id: int
    description: str | None = None


class OrganisationOut(_Open):
    id: int
    name: str | None = None


class TargetOut(BaseModel):
    type: str
    id: str


class Event(_Open):
    """A stored event: the emnify/1NCE record shape, plus Herald's and the producer's fields."""

    id: int
    timestamp: str = Field(description="ISO 8601, UTC, milliseconds: 2021-10-27T08:38:02.000Z")
    event_type: Level
    event_severity: Level
    event_source: Level
    organisation: OrganisationOut
    alert: bool
    description: str | None = None
    # Always present, null when the event has none: as emnify's and 1NCE's records list them.
    endpoint: dict[str, Any] | None = Field(description="The endpoint, or null")
    sim: dict[str, Any] | None = Field(description="The SIM, or null")
    imsi: dict[str, Any] | None = Field(description="The IMSI, or null")
    user: dict[str, Any] | None = Field(description="The user, or null")
    detail: Any = Field(description="The type's details (any JSON), or null")
    target: TargetOut | None = None
    criticality: Level | None = None
    moniker: str | None = None
    internal: bool | None = None
    payload: dict[str, Any] | None = None
    provider: str | None = None
    external_id: str | None = None
    received: str | None = None


class StatsRow(BaseModel):
    time: str | None = None
    key: int | str | None = None
    label: Any = None
    count: int
    volume_mb: float


class Stats(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from")
    until: str
    bucket: str | None
    group: str | None
    order: str
    total: int
    volume_mb: float
    rows: list[StatsRow]


class EventType(BaseModel):
    id: int
    description: str
    group: str | None
    catalogues: list[str]
    onece_description: str | None
    default_severity: int | None
    default_source: int | None
    default_alert: bool | None
    scope: str
    monikers: list[str]


class MonikerOut(BaseModel):
    moniker: str
    name: str
    scope: str
    type_id: int


class BatchOut(BaseModel):
    max_events: int = Field(description="The most events a request carries (1 to 10,000).")
    max_wait_ms: int
    max_bytes: int | None = Field(
        description="The most record bytes a batch carries (null: 64 MiB, the ceiling)."
    )


class HandlerOut(BaseModel):
    """An event handler (its secret only when just issued)."""

    id: int
    organisation: OrganisationOut
    name: str
    type: str
    url: str
    settings: dict[str, str | bool | int | float | dict[str, str]] = Field(
        description="The sink's settings (topic, subject, exchange, routing_key, bucket...; "
        "a webhook's headers, an object, and timeout_seconds, a number)."
    )
    credentials_set: bool = Field(
        description="Whether credentials are stored (never shown): a broker's, or the "
        "webhook's for its receiver (Bearer token, or Basic username and password)."
    )
    format: str = Field(description="native, cloudevents, ndjson or stacuity")
    filter: str = Field(description="Which events it gets, in the event list's q syntax.")
    batch: BatchOut
    enabled: bool = Field(description="false: paused (by the user) or disabled (by failures)")
    disabled_reason: str | None
    retention_days: float
    created: str
    updated: str
    secret: str | None = None
    previous_secret_valid_until: str | None = None

    @classmethod
    def of(
        cls, handler: Handler, *, secret: str | None = None, secret_until_ms: int | None = None
    ) -> HandlerOut:
        """A handler as the API shows it; the secret only when just issued (with the time
        the previous one stops signing, after a rotation); credentials never (only whether
        some are set)."""
        spec = handler.spec
        out = cls(
            id=handler.id,
            organisation=OrganisationOut(id=handler.organisation_id),
            name=spec.name,
            type=spec.type,
            url=spec.url,
            settings=orjson.loads(spec.settings or "{}"),
            credentials_set=bool(spec.credentials),
            format=spec.format,
            filter=spec.filter,
            batch=BatchOut(
                max_events=spec.batch_max_events,
                max_wait_ms=spec.batch_max_wait_ms,
                max_bytes=spec.batch_max_bytes,
            ),
            enabled=spec.enabled,
            disabled_reason=handler.disabled_reason,
            retention_days=spec.retention_ms / 86_400_000,
            created=format_ms(handler.created_ms),
            updated=format_ms(handler.updated_ms),
        )
        if secret is not None:
            out.secret = secret
        if secret_until_ms is not None:
            out.previous_secret_valid_until = format_ms(secret_until_ms)
        return out


class DeliveryOut(BaseModel):
    """One attempt of a handler's log (a test's answer has no ``id``)."""

    id: int | None = None
    time: str
    kind: str
    event_ids: list[int]
    status: int | None
    outcome: str
    error: str | None
    latency_ms: int | float | None
    detail: str | None = Field(
        default=None, description="A test's answer: what the broker acknowledged."
    )

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryOut:
        """An attempt of the log."""
        return cls(id=delivery.id, **_attempt(delivery))

    @classmethod
    def of_test(cls, delivery: Delivery, detail: str | None) -> DeliveryOut:
        """A test send's answer: the attempt (no id) and what the broker acknowledged."""
        return cls(**_attempt(delivery), detail=detail)


def _attempt(delivery: Delivery) -> dict[str, Any]:
    return {
        "time": format_ms(delivery.at_ms),
        "kind": delivery.kind,
        "event_ids": list(delivery.event_ids),
        "status": delivery.status,
        "outcome": delivery.outcome,
        "error": delivery.error,
        "latency_ms": delivery.latency_ms,
    }


class DeliveryPlace(BaseModel):
    mode: str | None = Field(description="serve (in-process) or worker, while leased")
    owner: str | None
    lease_until: str | None


class HandlerStatusOut(BaseModel):
    """A handler's delivery state: ``GET /event_handler/{id}/status``."""

    id: int
    state: HandlerState
    reason: str | None
    last_success: str | None
    last_error: str | None
    consecutive_failures: int
    failing_since: str | None
    next_attempt: str | None
    lag_events: int = Field(
        description="Events after the cursor that the handler's filter selects (up to 100,000)"
    )
    lag_events_capped: bool = Field(description="lag_events stopped counting at its limit")
    lag_seconds: float
    cursor_seq: int
    pending_replays: int
    delivery: DeliveryPlace

    @classmethod
    def of(cls, status: HandlerStatus) -> HandlerStatusOut:
        """A handler's status as the API shows it."""
        handler, owner = status.handler, status.owner
        return cls(
            id=handler.id,
            state=status.state,
            reason=handler.disabled_reason,
            last_success=_time(handler.last_success_ms),
            last_error=handler.last_error,
            consecutive_failures=handler.failures,
            failing_since=_time(handler.failing_since_ms),
            next_attempt=_time(handler.next_attempt_ms),
            lag_events=status.lag_events,
            lag_events_capped=status.lag_events_capped,
            lag_seconds=status.lag_ms / 1000,
            cursor_seq=handler.cursor_seq,
            pending_replays=status.pending_replays,
            delivery=DeliveryPlace(
                mode=owner.split(":", 1)[0] if owner else None,
                owner=owner,
                lease_until=_time(handler.lease_until_ms) if owner else None,
            ),
        )


def _time(ms: int | None) -> str | None:
    return format_ms(ms) if ms is not None else None


class ReplayOut(BaseModel):
    id: int
    from_: str = Field(alias="from")
    until: str
    done: bool

    @classmethod
    def of(cls, replay: Replay) -> ReplayOut:
        """A queued replay."""
        return cls.model_validate(
            {
                "id": replay.id,
                "from": format_ms(replay.from_ms),
                "until": format_ms(replay.until_ms),
                "done": replay.done_ms is not None,
            }
        )


class StatusOut(_Open):
    status: str
