"""What the API answers, as models for the OpenAPI document only.

The routes serialise plain data themselves (orjson, no response validation on the hot
path); these models say what that data is, and ``api/openapi.py`` puts them in the document.
A test checks real answers against them (schemathesis' response conformance).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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
    settings: dict[str, str | bool | float | dict[str, str]] = Field(
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


class DeliveryPlace(BaseModel):
    mode: str | None
    owner: str | None
    lease_until: str | None


class HandlerStatusOut(BaseModel):
    id: int
    state: str
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


class ReplayOut(BaseModel):
    id: int
    from_: str = Field(alias="from")
    until: str
    done: bool


class StatusOut(_Open):
    status: str


class Connectivity(_Open):
    """An endpoint's connectivity as emnify's ``/endpoint/{id}/connectivity`` answers it."""

    status: Level
    location: dict[str, Any] | None = None
    pdp_context: dict[str, Any] | None = None
    services: list[Any] | None = None


class EndpointSummary(Connectivity):
    """One endpoint of the fleet list, with its connectivity and when it was last seen."""

    id: int | str | None = None
    name: str | None = None
    imei: Any = None
    ip_address: Any = None
    organisation: OrganisationOut
    sim_status: Any = None
    quota_status: Any = None
    last_seen: str
    updated: str


class StatusCount(BaseModel):
    status: Level
    count: int


class StatusCounts(BaseModel):
    total: int
    counts: list[StatusCount]


class TrafficTypeOut(BaseModel):
    id: int = Field(description="5 data, 6 SMS")
    description: str
    unit: str = Field(description="MB for data, SMS for messages")


class UsageVolume(BaseModel):
    """A volume: data in MB (6 decimals), SMS in messages; tx sent by the device (MO),
    rx received by it (MT)."""

    volume: float
    volume_tx: float
    volume_rx: float


class SmsVolume(UsageVolume):
    traffic_type: TrafficTypeOut


class DataVolume(SmsVolume):
    source: str | None = Field(
        description="Which source gave the day's data: records (usage records), sessions "
        "(Delete PDP Context volumes, on a day without data usage records), or null (none)."
    )


class UsageDay(BaseModel):
    """One UTC day of an endpoint's usage, as emnify's ``/stats/daily`` answers it."""

    date: str = Field(description="YYYY-MM-DD (UTC)", json_schema_extra={"format": "date"})
    data: DataVolume
    sms: SmsVolume


class UsageMonthVolume(UsageVolume):
    month: str = Field(description="The month's first day, YYYY-MM-DD")
    traffic_type_id: int
    traffic_type: TrafficTypeOut


class UsageMonth(BaseModel):
    data: UsageMonthVolume
    sms: UsageMonthVolume


class UsageMinute(UsageVolume):
    time: str = Field(description="The minute's start, ISO 8601 UTC")


class UsageHour(BaseModel):
    """The last 60 minutes, per minute with traffic."""

    data: list[UsageMinute]
    sms: list[UsageMinute]


class UsageStats(BaseModel):
    """An endpoint's usage as emnify's ``/stats`` answers it; a month only with traffic."""

    last_month: UsageMonth | None = None
    current_month: UsageMonth | None = None
    last_hour: UsageHour
