"""What a client sends to create or change an event handler, validated: the target URL's
form, a sink's settings and credentials, the batch, the filter, a replay's range."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from herald.delivery.formats import MAX_BATCH_BODY_BYTES
from herald.delivery.headers import (
    MAX_HEADER_NAME_CHARS,
    MAX_HEADER_VALUE_CHARS,
    MAX_HEADERS,
    MAX_TIMEOUT_SECONDS,
    MIN_TIMEOUT_SECONDS,
)
from herald.delivery.sinks.tls import MAX_PEM_CHARS
from herald.handlers.filters import MAX_FILTER_CHARS
from herald.model import Timestamp

MIN_BATCH_BYTES = 1024
MAX_BATCH_BYTES = MAX_BATCH_BODY_BYTES
MAX_BATCH_EVENTS = 10_000  # emnify's data streamer's largest bulk
Format = Literal["native", "cloudevents", "ndjson", "stacuity"]


# printable ASCII only; which schemes a type takes is checked by delivery.sinks
TARGET_URL = r"^(?:https?|mqtts?|nats|tls|amqps?)://[A-Za-z0-9._~%:\[\]-]+(?:[/?#][!-~]*)?$"
_TARGET_URL = re.compile(TARGET_URL)
TARGET_SCHEMES = ("http", "https", "mqtt", "mqtts", "nats", "tls", "amqp", "amqps")


def _target_url(value: str) -> str:
    """The URL if it has the form of a target; a sentence saying what is wrong if not."""
    if _TARGET_URL.fullmatch(value):
        return value
    scheme, sep, rest = value.partition("://")
    if not sep:
        raise ValueError("must be a URL with a scheme and a host, e.g. https://example.com/hook")
    if scheme not in TARGET_SCHEMES:
        raise ValueError(
            f"scheme {scheme[:16]!r} is not one Herald delivers to; use {', '.join(TARGET_SCHEMES)}"
        )
    if not rest or rest[0] in "/?#":
        raise ValueError(f"needs a host after {scheme}://")
    raise ValueError(
        "must be printable ASCII without spaces: scheme://host[:port][/path] "
        "(percent-encode other characters)"
    )


TargetUrl = Annotated[
    str,
    StringConstraints(min_length=1, max_length=2048),
    AfterValidator(_target_url),
    Field(
        json_schema_extra={"pattern": TARGET_URL},
        examples=["http://localhost:9/herald"],
        description="webhook: http(s); mqtt: mqtt(s)://host:port; nats: nats:// or tls://; "
        "amqp: amqp(s)://host:port/vhost; s3: the S3 endpoint, http(s)://host:port",
    ),
]
Setting = Annotated[str, StringConstraints(max_length=255)]
Credential = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
Pem = Annotated[str, StringConstraints(max_length=MAX_PEM_CHARS)]
HeaderName = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=MAX_HEADER_NAME_CHARS, pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
    ),
]
HeaderValue = Annotated[
    str, StringConstraints(max_length=MAX_HEADER_VALUE_CHARS, pattern=r"^[\t\x20-\x7e]*$")
]
HandlerType = Literal["webhook", "mqtt", "nats", "amqp", "s3"]


class SinkSettingsIn(BaseModel):
    """A broker sink's settings; which ones a type takes (and needs) is checked on write.
    Templates take {organisation_id}, {event_type}, {moniker}, {severity}, {endpoint_id},
    {target_type} and {target_id}."""

    model_config = ConfigDict(extra="forbid", strict=True)

    topic: Setting | None = Field(default=None, description="mqtt: topic template")
    subject: Setting | None = Field(default=None, description="nats: subject template")
    exchange: Setting | None = Field(default=None, description='amqp: exchange ("": default)')
    routing_key: Setting | None = Field(default=None, description="amqp: routing key template")
    bucket: Setting | None = Field(default=None, description="s3: bucket")
    region: Setting | None = Field(default=None, description="s3: region (us-east-1)")
    tls_verify: bool | None = Field(default=None, description="verify the TLS certificate")
    ca_cert: Pem | None = Field(
        default=None,
        description="mqtts, tls, amqps: the PEM CA bundle that verifies the broker instead of "
        "the system's CAs (a private CA); \"\": the system's again",
    )
    headers: dict[HeaderName, HeaderValue] | None = Field(
        default=None,
        max_length=MAX_HEADERS,
        description=f"webhook: custom request headers (at most {MAX_HEADERS}; names are tokens; "
        "values printable ASCII, no CR/LF; never hop-by-hop ones, Host, Content-Length, "
        "Content-Type, Expect, Authorization (use credentials) or the webhook-* signature "
        "headers). Given, it replaces the current ones ({}: none). Shown in answers: put "
        "secrets in credentials.",
        examples=[{"X-Api-Key-Id": "fleet-a", "X-Tenant": "acme"}],
    )
    timeout_seconds: float | None = Field(
        default=None,
        ge=MIN_TIMEOUT_SECONDS,
        le=MAX_TIMEOUT_SECONDS,
        description="webhook: this handler's request timeout (connect, send and answer); "
        "absent: HERALD_DELIVERY_TIMEOUT_SECONDS",
        examples=[5],
    )


class CredentialsIn(BaseModel):
    """A handler's credentials: write-only, sealed at rest, never answered or logged. A
    webhook's authenticate it to its receiver: ``token`` (``Authorization: Bearer``) or
    ``username`` and ``password`` (``Authorization: Basic``)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    username: Credential | None = Field(
        default=None, description="mqtt, nats, amqp; webhook: Basic (with password)"
    )
    password: Credential | None = Field(
        default=None, description="mqtt, nats, amqp; webhook: Basic (with username)"
    )
    token: Credential | None = Field(default=None, description="nats; webhook: Bearer")
    access_key_id: Credential | None = Field(default=None, description="s3")
    secret_access_key: Credential | None = Field(default=None, description="s3")
    client_cert: Pem | None = Field(
        default=None, description="mqtts, tls, amqps: the client certificate (PEM, chain)"
    )
    client_key: Pem | None = Field(
        default=None, description="mqtts, tls, amqps: its private key (PEM, unencrypted)"
    )


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    max_events: int = Field(
        default=1,
        ge=1,
        le=MAX_BATCH_EVENTS,
        description="1: one event per request; more: a JSON array (NDJSON lines) of up to "
        f"{MAX_BATCH_EVENTS:,}, whose records hold {MAX_BATCH_BODY_BYTES // 2**20} MiB at most "
        "whatever max_bytes says",
    )
    max_wait_ms: int = Field(default=0, ge=0, le=60_000)
    max_bytes: int | None = Field(
        default=None,
        ge=MIN_BATCH_BYTES,
        le=MAX_BATCH_BYTES,
        description="The most record bytes (each an NDJSON line) a batch carries; a batch "
        "holds one event at least, however big. Absent: "
        f"{MAX_BATCH_BODY_BYTES // 2**20} MiB.",
    )


FilterText = Annotated[str, StringConstraints(max_length=MAX_FILTER_CHARS)]


class HandlerIn(BaseModel):
    """A new event handler."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=256)
    type: HandlerType = "webhook"
    url: TargetUrl
    settings: SinkSettingsIn | None = None
    credentials: CredentialsIn | None = None
    format: Format = Field(
        default="native",
        description="native: Herald's records; cloudevents: CloudEvents 1.0; ndjson: one "
        "record a line; stacuity: Stacuity's envelope (eventId, eventTime, eventType, "
        "accountId, endpointId or routingTargetId, detail, herald: the record)",
    )
    filter: FilterText | dict[str, Any] = Field(
        default="",
        description="Which events it gets, in the event list's q syntax "
        '("type:3|5,severity:warn,tags:fleet_a"); empty: all of the organisation\'s.',
    )
    batch: BatchIn = Field(default_factory=BatchIn)
    enabled: bool = True
    retention_days: float | None = Field(default=None, gt=0, le=30)
    organisation_id: int | None = Field(
        default=None,
        ge=1,
        le=2**53,  # what an event's organisation.id holds
        description="Internal tokens only: the organisation it is for.",
    )


class HandlerPatch(BaseModel):
    """Changes to a handler; absent fields stay as they are."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str | None = Field(default=None, min_length=1, max_length=256)
    url: TargetUrl | None = None
    settings: SinkSettingsIn | None = Field(
        default=None, description="merged into the current settings"
    )
    credentials: CredentialsIn | None = Field(
        default=None, description="replace the credentials ({}: none)"
    )
    format: Format | None = None
    filter: FilterText | dict[str, Any] | None = None
    batch: BatchIn | None = None
    enabled: bool | None = Field(
        default=None,
        description="false pauses the handler: its cursor stays where it is, and true resumes "
        "it there, the backlog (the events still stored) delivered in order",
    )
    retention_days: float | None = Field(default=None, gt=0, le=30)


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)

    from_: Timestamp = Field(alias="from")
    until: Timestamp | None = None
