"""The pydantic path the event codec replaced (``herald.model`` before issue 31), kept
only while the equivalence test compares the two (``test_codec_equivalence.py``).

Herald serialises every event in the emnify/1NCE record shape (``id``, ``timestamp``,
``event_type``, ``event_severity``, ``event_source``, ``organisation``, ``alert``,
``description``, ``endpoint``, ``sim``, ``imsi``, ``user``, ``detail``) and adds what the
platform event API and Stacuity need: ``target``, ``criticality``, ``moniker``, ``internal``,
``payload``, plus the provenance fields ``provider``, ``external_id`` and ``received``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)

from herald.catalog import CRITICALITIES, SEVERITIES, SOURCES, Catalog, Scope
from herald.record import JSON, NewEvent
from herald.retention import too_old, window_start_ms
from herald.timefmt import format_ms, in_range, parse_timestamp, to_ms

# Criticality (platform event API: 1 critical ... 5 trivial) derived from severity when absent.
CRITICALITY_FOR_SEVERITY = {2: 1, 1: 3, 0: 5}
TARGET_TYPE = r"^[a-z][a-z0-9_]{0,31}$"
"""A target entity type: an open set of short lowercase names (device, folder, tenant...)."""
RESERVED_FIELDS = frozenset({"provider", "external_id", "received", "payload", "provider_type"})
PLATFORM_NAMES = ("tenant_id", "target_entity_type", "target_entity_id")
"""The platform event API's names of an event's organisation and target: read as Herald's
``organisation`` and ``target``, never kept as unknown fields."""
MAX_EXTRA_FIELDS = 32
MAX_JSON_DEPTH = 32
"""How deep free JSON (``detail``, ``payload.data``, unknown fields) may nest: a record must
stay far below what the serialiser takes (orjson stops at 255 levels)."""
# A batch shares one receive time: format it once, not once per event.
_format_received = lru_cache(maxsize=64)(format_ms)


def _timestamp(value: object) -> object:
    return parse_timestamp(value) if isinstance(value, str) else value


Timestamp = Annotated[datetime, BeforeValidator(_timestamp), AfterValidator(in_range)]
ShortText = Annotated[str, StringConstraints(max_length=256)]


def _bounded(value: JSON) -> JSON:
    if json_depth(value, MAX_JSON_DEPTH + 1) > MAX_JSON_DEPTH:
        raise ValueError(_TOO_DEEP.format(limit=MAX_JSON_DEPTH))
    return value


_TOO_DEEP = "nests deeper than {limit} levels"
BoundedJSON = Annotated[JSON, AfterValidator(_bounded)]
"""Free JSON nested at most ``MAX_JSON_DEPTH`` levels."""


class _Open(BaseModel):
    """Nested objects keep any extra fields a provider sends (nested at most 32 levels)."""

    model_config = ConfigDict(extra="allow")
    # Extra fields are validated as this type (each one, none when there are none).
    __pydantic_extra__: dict[str, BoundedJSON] = Field(init=False)


class TypeRef(BaseModel):
    id: int = Field(ge=0, le=2**31 - 1, strict=True)  # false is no type (was taken as 0)
    description: str | None = Field(default=None, max_length=256)


class LevelRef(BaseModel):
    id: int = Field(ge=0)
    description: str | None = Field(default=None, max_length=64)


def _criticality_id(value: object) -> object:
    """Criticality in the form records serve it, ``{"id": 3, "description": "Medium"}``,
    as its id (the description is not read); a number or null as it is."""
    if isinstance(value, dict):
        if "id" not in value:
            raise ValueError('the object form needs its "id" (0-5)')
        return value["id"]
    return value


_CRITICALITY_SCHEMA = {
    "anyOf": [
        {"type": "integer", "minimum": 0, "maximum": 5},
        {
            "type": "object",
            "properties": {
                "id": {"type": "integer", "minimum": 0, "maximum": 5},
                "description": {"type": "string"},
            },
            "required": ["id"],
        },
        {"type": "null"},
    ]
}


class OrganisationRef(BaseModel):
    id: int = Field(ge=1, le=2**53)
    name: str | None = Field(default=None, max_length=256)


class EndpointRef(_Open):
    id: int | None = Field(default=None, ge=0, le=2**63 - 1)
    name: ShortText | None = None
    ip_address: ShortText | None = None
    imei: ShortText | None = None
    tags: ShortText | None = None


class SimRef(_Open):
    id: int | None = Field(default=None, ge=0, le=2**63 - 1)
    iccid: ShortText | None = None
    msisdn: ShortText | None = None


class ImsiRef(_Open):
    id: int | None = Field(default=None, ge=0, le=2**63 - 1)
    imsi: ShortText | None = None


class UserRef(_Open):
    id: int | None = Field(default=None, ge=0, le=2**63 - 1)
    name: ShortText | None = None
    username: ShortText | None = None


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


class TargetRef(BaseModel):
    # "Device", "Folder", "User", "Tenant" (the platform event API's spelling) are accepted.
    type: Annotated[str, BeforeValidator(_lower)] = Field(pattern=TARGET_TYPE)
    id: str = Field(min_length=1, max_length=256)


class Payload(BaseModel):
    content_type: str = Field(default="application/json", max_length=128)
    data: BoundedJSON = None


class EventIn(BaseModel):
    """One event as a producer sends it to ``POST /api/v1/event``.

    Unknown top-level fields (a streamer's own metadata, say) are kept on the record as sent,
    unless they would shadow a field Herald sets.
    """

    model_config = ConfigDict(extra="allow")

    id: int | Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = Field(
        default=None, description="The producer's own id; posting it again stores nothing new."
    )
    timestamp: Timestamp | None = Field(
        default=None, description="When it happened; now if absent."
    )
    event_type: TypeRef | None = None
    moniker: str | None = Field(default=None, max_length=128, description="Stacuity moniker.")
    event_severity: LevelRef | None = None
    event_source: LevelRef | None = None
    organisation: OrganisationRef | None = None
    alert: bool | None = None
    description: str | None = Field(default=None, max_length=4096)
    endpoint: EndpointRef | None = None
    sim: SimRef | None = None
    imsi: ImsiRef | None = None
    user: UserRef | None = None
    detail: BoundedJSON = None
    target: TargetRef | None = None
    criticality: Annotated[
        int | None, BeforeValidator(_criticality_id), WithJsonSchema(_CRITICALITY_SCHEMA)
    ] = Field(
        ge=0,
        le=5,
        default=None,
        description="1 critical ... 5 trivial; 0 or null: not applicable; absent: from "
        'severity. A number, or the object records serve ({"id": 3, "description": '
        '"Medium"}; its id counts).',
    )
    payload: Payload | None = None
    # The platform event API's names (PLATFORM_NAMES): read, never stored as they are.
    tenant_id: int | Annotated[str, StringConstraints(max_length=32)] | None = Field(
        default=None,
        description="The platform event API's name of the organisation: if given, the "
        "organisation the event is written for (422 otherwise); not stored.",
    )
    target_entity_type: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        default=None,
        description="The platform event API's target type, with target_entity_id: stored as "
        "target.type (lowercase). Not with target.",
    )
    target_entity_id: int | Annotated[str, StringConstraints(max_length=256)] | None = Field(
        default=None,
        description="The platform event API's target id, with target_entity_type: stored as "
        "target.id (text).",
    )
    # Unknown fields nest at most ``MAX_JSON_DEPTH`` levels, like ``detail``.
    __pydantic_extra__: dict[str, BoundedJSON] = Field(init=False)


def json_depth(value: JSON, stop: int) -> int:
    """How deep ``value`` nests (a scalar is 0, ``[1]`` is 1), counted up to ``stop``."""
    deepest = 0
    level: list[JSON] = [value]
    while level and deepest < stop:
        inner: list[JSON] = []
        for item in level:
            if isinstance(item, dict):
                inner.extend(item.values())
            elif isinstance(item, list):
                inner.extend(item)
        if not inner and not any(isinstance(item, dict | list) for item in level):
            break
        deepest += 1
        level = inner
    return deepest


@dataclass(frozen=True, slots=True)
class FieldError:
    """Why one field of one event was refused."""

    field: str
    reason: str


def as_sent(ref: BaseModel) -> dict[str, JSON]:
    """``ref.model_dump(mode="json", exclude_unset=True)`` without the serialiser (a third of
    building an event): a reference's declared fields hold ints and strings, JSON already,
    and its extra fields are kept as sent, as the record's own extra fields are."""
    sent = ref.model_fields_set
    data = {name: value for name, value in ref.__dict__.items() if name in sent}
    if ref.__pydantic_extra__:
        data.update(ref.__pydantic_extra__)
    return data


def _target(scope: Scope, event: EventIn, organisation_id: int) -> dict[str, str] | None:
    """The record's ``target``: the event's own, else the entity its type's scope names."""
    if event.target is not None:
        return {"type": event.target.type, "id": event.target.id}
    if scope is Scope.ENDPOINT:
        ref = event.endpoint.id if event.endpoint else None
    elif scope is Scope.SIM:
        ref = event.sim.id if event.sim else None
    elif scope is Scope.USER:
        ref = event.user.id if event.user else None
    elif scope is Scope.ORGANISATION:
        ref = organisation_id
    else:
        ref = None
    if ref is None and event.endpoint and event.endpoint.id is not None:
        scope, ref = Scope.ENDPOINT, event.endpoint.id
    # a scope's name and a decimal id always pass TargetRef's checks: no model needed
    return {"type": scope.value, "id": str(ref)} if ref is not None else None


def build_event(
    event: EventIn,
    *,
    organisation: OrganisationRef,
    catalog: Catalog,
    received_ms: int,
    internal: bool,
    provider: str = "api",
    max_future_ms: int = 5000,
    provider_type: str | None = None,
    retention_days: float | None = None,
) -> NewEvent | list[FieldError]:
    """Check an incoming event against the catalogue and fill in its defaults.

    ``internal``: the platform writes it (an internal token, a provider adapter, Herald
    itself); only then is a catalogued system code ``internal: true``. A tenant may write any
    code, as a custom (``internal: false``) event. ``provider_type`` is the provider's own
    type id or moniker, kept beside Herald's type. ``retention_days``: the organisation's; a
    timestamp older than the retention window is refused (``herald.retention``), as one in
    the future beyond ``max_future_ms`` is. Returns the event ready for the store, or the
    reasons it was refused.
    """
    errors: list[FieldError] = []
    if len(event.model_extra or {}) > MAX_EXTRA_FIELDS:
        errors.append(FieldError("body", f"at most {MAX_EXTRA_FIELDS} unknown fields"))
    type_id, moniker = _resolve_type(event, catalog, errors, internal)
    event_type = catalog.get(type_id) if type_id is not None else None

    timestamp_ms = to_ms(event.timestamp) if event.timestamp else received_ms
    if timestamp_ms > received_ms + max_future_ms:
        errors.append(FieldError("timestamp", "must not be in the future"))
    elif retention_days is not None and timestamp_ms < window_start_ms(received_ms, retention_days):
        errors.append(FieldError("timestamp", too_old(retention_days)))

    severity = _level(event.event_severity, event_type.default_severity if event_type else None, 0)
    if severity not in SEVERITIES:
        errors.append(FieldError("event_severity.id", f"must be one of {sorted(SEVERITIES)}"))
    # A tenant's event comes through the API: its source is API unless it names one.
    type_source = event_type.default_source if event_type and internal else None
    source = _level(event.event_source, type_source, 2)
    if source not in SOURCES:
        errors.append(FieldError("event_source.id", f"must be one of {sorted(SOURCES)}"))
    platform_target = _platform_names(event, organisation.id, errors)
    if errors or type_id is None:
        return errors

    alert = event.alert
    if alert is None:
        alert = bool(event_type.default_alert) if event_type else False
    criticality = event.criticality
    if "criticality" not in event.model_fields_set:
        criticality = CRITICALITY_FOR_SEVERITY[severity]
    elif criticality is None:
        criticality = 0  # the producer says: not applicable
    scope = event_type.scope if event_type else Scope.CUSTOM
    target = platform_target or _target(scope, event, organisation.id)
    moniker = moniker or catalog.moniker_for(type_id)
    if moniker is None and provider == "stacuity":
        moniker = provider_type  # a moniker the catalogue does not know (yet): kept as sent

    record: dict[str, JSON] = {
        "id": None,
        "timestamp": format_ms(timestamp_ms),
        "event_type": {"id": type_id, "description": catalog.describe(type_id)},
        "event_severity": {"id": severity, "description": SEVERITIES[severity]},
        "event_source": {"id": source, "description": SOURCES[source]},
        "organisation": {"id": organisation.id, "name": organisation.name},
        "alert": alert,
        "description": event.description
        if event.description is not None
        else catalog.describe(type_id),
    }
    for key in ("endpoint", "sim", "imsi", "user"):
        ref: BaseModel | None = getattr(event, key)
        record[key] = as_sent(ref) if ref is not None else None
    record["detail"] = event.detail
    record["target"] = target
    record["criticality"] = {"id": criticality, "description": CRITICALITIES[criticality]}
    record["moniker"] = moniker
    record["internal"] = internal and event_type is not None
    if event.payload is not None:
        record["payload"] = event.payload.model_dump(mode="json")
    for key, value in (event.model_extra or {}).items():
        if key not in record and key not in RESERVED_FIELDS and key not in PLATFORM_NAMES:
            record[key] = value
    external_id = str(event.id) if event.id is not None else None
    record["provider"] = provider
    if provider_type is not None:
        record["provider_type"] = provider_type
    record["external_id"] = external_id
    record["received"] = _format_received(received_ms)
    return NewEvent(
        organisation_id=organisation.id,
        timestamp_ms=timestamp_ms,
        received_ms=received_ms,
        type_id=type_id,
        severity=severity,
        source=source,
        alert=alert,
        criticality=criticality,
        provider=provider,
        external_id=external_id,
        record=record,
    )


def _resolve_type(
    event: EventIn, catalog: Catalog, errors: list[FieldError], internal: bool
) -> tuple[int | None, str | None]:
    moniker = None
    if event.moniker is not None:
        known = catalog.by_moniker(event.moniker)
        if known is None:
            errors.append(FieldError("moniker", "unknown moniker"))
            return None, None
        moniker = known.moniker
        if event.event_type is None:
            return known.type_id, moniker
        if event.event_type.id != known.type_id:
            errors.append(FieldError("moniker", f"names type {known.type_id}, not the event_type"))
    if event.event_type is None:
        errors.append(FieldError("event_type", "required (or a moniker)"))
        return None, None
    if internal and not catalog.is_known(event.event_type.id):
        errors.append(
            FieldError("event_type.id", "unknown system event type (custom codes start at 10000)")
        )
        return None, None
    return event.event_type.id, moniker


def _platform_names(
    event: EventIn, organisation_id: int, errors: list[FieldError]
) -> dict[str, str] | None:
    """The platform event API's ``tenant_id`` (must be the organisation written for) and
    ``target_entity_type`` / ``target_entity_id`` (the ``target``, given both or neither)."""
    if event.tenant_id is not None:
        if str(event.tenant_id) != str(organisation_id):
            errors.append(
                FieldError(
                    "tenant_id",
                    f"must be {organisation_id}, the organisation this event is written for "
                    "(or be left out)",
                )
            )
    kind, ref = event.target_entity_type, event.target_entity_id
    if kind is None and ref is None:
        return None
    if event.target is not None:
        errors.append(
            FieldError("target_entity_type", "give target or target_entity_type/_id, not both")
        )
        return None
    if kind is None or ref is None:
        name = "target_entity_type" if kind is None else "target_entity_id"
        errors.append(FieldError(name, "required with the other target_entity_ field"))
        return None
    try:
        target = TargetRef(type=kind, id=str(ref))
    except ValidationError as exc:
        field = "target_entity_type" if exc.errors()[0]["loc"][0] == "type" else "target_entity_id"
        errors.append(FieldError(field, str(exc.errors()[0]["msg"])))
        return None
    return {"type": target.type, "id": target.id}


def _level(ref: LevelRef | None, default: int | None, fallback: int) -> int:
    if ref is not None:
        return ref.id
    return default if default is not None else fallback
