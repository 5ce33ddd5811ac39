"""The event codec: what a producer may send, checked by compiled msgspec Structs.

A request body is parsed once (orjson) and its events converted into ``EventIn`` Structs in
one call for the whole batch (msgspec, in C); what a type cannot say is checked after it in a
few lines of Python (timestamps, the target type's spelling, how deep free JSON nests).
``herald.events.build`` turns a ``Checked`` event into the record's columns and its canonical
bytes. The OpenAPI document's schema of the body is generated from these same types
(``schema``), so the document and the validator cannot drift.

Unknown fields are kept as sent (top level and in the references ``endpoint``, ``sim``,
``imsi``, ``user``): a Struct ignores them, so they are read from the object as sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any, Final

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from herald.gil import offer_gil
from herald.timefmt import in_range, parse_timestamp, to_ms

MAX_EXTRA_FIELDS = 32
MAX_JSON_DEPTH = 32
"""How deep free JSON (``detail``, ``payload.data``, unknown fields) may nest: a record must
stay far below what the serialiser takes (orjson stops at 255 levels)."""
TARGET_TYPE = r"^[a-z][a-z0-9_]{0,31}$"
"""A target entity type: an open set of short lowercase names (device, folder, tenant...)."""
_TARGET_TYPE = re.compile(TARGET_TYPE.removesuffix("$"))  # fullmatch: no trailing newline
_TOO_DEEP = f"nests deeper than {MAX_JSON_DEPTH} levels"

Text256 = Annotated[str, Meta(max_length=256)]
EntityId = Annotated[int, Meta(ge=0, le=2**63 - 1)]


class TypeRef(Struct, kw_only=True):
    """An event type by its code (``id``; a number, never text)."""

    id: Annotated[int, Meta(ge=0, le=2**31 - 1)]
    description: Annotated[str, Meta(max_length=256)] | None = None


class LevelRef(Struct, kw_only=True):
    """A severity or a source by its id."""

    id: Annotated[int, Meta(ge=0)]
    description: Annotated[str, Meta(max_length=64)] | None = None


class OrganisationRef(Struct, kw_only=True):
    """An organisation by its id (its name as Herald knows it)."""

    id: Annotated[int, Meta(ge=1, le=2**53)]
    name: Annotated[str, Meta(max_length=256)] | None = None


class EndpointRef(Struct, kw_only=True):
    """The endpoint; fields not named here are kept as sent."""

    id: EntityId | UnsetType | None = UNSET
    name: Text256 | UnsetType | None = UNSET
    ip_address: Text256 | UnsetType | None = UNSET
    imei: Text256 | UnsetType | None = UNSET
    tags: Text256 | UnsetType | None = UNSET


class SimRef(Struct, kw_only=True):
    """The SIM; fields not named here are kept as sent."""

    id: EntityId | UnsetType | None = UNSET
    iccid: Text256 | UnsetType | None = UNSET
    msisdn: Text256 | UnsetType | None = UNSET


class ImsiRef(Struct, kw_only=True):
    """The IMSI; fields not named here are kept as sent."""

    id: EntityId | UnsetType | None = UNSET
    imsi: Text256 | UnsetType | None = UNSET


class UserRef(Struct, kw_only=True):
    """The user; fields not named here are kept as sent."""

    id: EntityId | UnsetType | None = UNSET
    name: Text256 | UnsetType | None = UNSET
    username: Text256 | UnsetType | None = UNSET


class TargetRef(Struct, kw_only=True):
    """The entity an event is about: "Device", "Folder"... are read lowercase."""

    type: Annotated[
        str, Meta(max_length=32, extra_json_schema={"pattern": "^[A-Za-z][A-Za-z0-9_]*$"})
    ]
    id: Annotated[str, Meta(min_length=1, max_length=256)]


class CriticalityRef(Struct, kw_only=True):
    """Criticality in the form records serve it; its ``id`` counts."""

    id: Annotated[int, Meta(ge=0, le=5)]
    description: Any = None


class Payload(Struct, kw_only=True):
    """The platform event API's payload: its content type and data."""

    content_type: Annotated[str, Meta(max_length=128)] = "application/json"
    data: Any = None


Criticality = Annotated[int, Meta(ge=0, le=5)]


class EventIn(Struct, kw_only=True):
    """One event as a producer sends it to ``POST /api/v1/event``.

    Unknown top-level fields (a streamer's own metadata, say) are kept on the record as sent,
    unless they would shadow a field Herald sets.
    """

    id: int | Annotated[str, Meta(min_length=1, max_length=128)] | None = msgspec.field(
        default=None
    )
    timestamp: (
        Annotated[str, Meta(extra_json_schema={"format": "date-time"})]
        | Annotated[float, Meta(description="Unix seconds (milliseconds past 2e10)")]
        | None
    ) = None
    event_type: TypeRef | None = None
    moniker: Annotated[str, Meta(max_length=128)] | None = None
    event_severity: LevelRef | None = None
    event_source: LevelRef | None = None
    organisation: OrganisationRef | None = None
    alert: bool | None = None
    description: Annotated[str, Meta(max_length=4096)] | None = None
    endpoint: EndpointRef | None = None
    sim: SimRef | None = None
    imsi: ImsiRef | None = None
    user: UserRef | None = None
    detail: Any = None
    target: TargetRef | None = None
    criticality: Criticality | CriticalityRef | UnsetType | None = UNSET
    payload: Payload | None = None
    tenant_id: int | Annotated[str, Meta(max_length=32)] | None = None
    target_entity_type: Annotated[str, Meta(max_length=64)] | None = None
    target_entity_id: int | Annotated[str, Meta(max_length=256)] | None = None


DESCRIPTIONS: Final = {
    "id": "The producer's own id; posting it again stores nothing new.",
    "timestamp": "When it happened; now if absent.",
    "moniker": "Stacuity moniker.",
    "criticality": "1 critical ... 5 trivial; 0 or null: not applicable; absent: from "
    'severity. A number, or the object records serve ({"id": 3, "description": '
    '"Medium"}; its id counts).',
    "tenant_id": "The platform event API's name of the organisation: if given, the "
    "organisation the event is written for (422 otherwise); not stored.",
    "target_entity_type": "The platform event API's target type, with target_entity_id: "
    "stored as target.type (lowercase). Not with target.",
    "target_entity_id": "The platform event API's target id, with target_entity_type: "
    "stored as target.id (text).",
}
"""What the OpenAPI document says of fields whose type says too little."""

FIELDS: Final = frozenset(EventIn.__struct_fields__)
_FIELD_TYPES: Final = {field.name: field.type for field in msgspec.structs.fields(EventIn)}
_OPEN: Final = ("endpoint", "sim", "imsi", "user")
_FREE: Final = ("detail",)

# msgspec builds a Struct's type information on the Struct's first use and keeps it; two
# threads doing so at once crash the process (a segfault in msgspec, seen when the first
# batches of a new `serve` were checked in two threads at once). Built here, at import,
# while one thread runs.
msgspec.json.Decoder(list[EventIn])


@dataclass(frozen=True, slots=True)
class FieldError:
    """Why one field of one event was refused."""

    field: str
    reason: str


@dataclass(frozen=True, slots=True)
class Checked:
    """An event that passed the codec: its Struct, the object as sent (its references'
    unknown fields are read from it), its unknown top-level fields in the order sent and
    its time in Unix ms (None: absent)."""

    event: EventIn
    sent: Mapping[str, Any]
    extra: dict[str, Any]
    timestamp_ms: int | None


def check_all(items: Sequence[Any]) -> list[Checked | list[FieldError]]:
    """Each item checked (``check``): the whole batch converted in one call when it can be."""
    try:
        events = msgspec.convert(items, list[EventIn], strict=False)
    except msgspec.ValidationError:
        return [check(item) for item in items]
    checked: list[Checked | list[FieldError]] = []
    for index, (event, item) in enumerate(zip(events, items, strict=True)):
        offer_gil(index)
        checked.append(_finish(event, item))
    return checked


def check(item: Any) -> Checked | list[FieldError]:
    """One event as sent, converted and checked; every field at fault otherwise."""
    try:
        event = msgspec.convert(item, EventIn, strict=False)
    except msgspec.ValidationError as exc:
        if not isinstance(item, dict):
            return [_field_error(exc)]
        return _every_error(item)
    return _finish(event, item)


def _every_error(item: dict[str, Any]) -> list[FieldError]:
    """Each field checked alone: every bad one named (a Struct names the first)."""
    errors: list[FieldError] = []
    passed = dict(item)
    for name, value in item.items():
        kind = _FIELD_TYPES.get(name)
        if kind is None:
            continue
        try:
            msgspec.convert(value, kind, strict=False)
        except msgspec.ValidationError as exc:
            errors.append(_field_error(exc, name))
            del passed[name]
    rest = check(passed) if errors else []
    return errors + (rest if isinstance(rest, list) else []) or [FieldError("body", "invalid")]


def _finish(event: EventIn, item: dict[str, Any]) -> Checked | list[FieldError]:
    """What the Struct's types cannot say, checked."""
    errors: list[FieldError] = []
    if event.event_type is not None and type(item["event_type"]["id"]) is not int:
        kind = type(item["event_type"]["id"]).__name__
        errors.append(FieldError("event_type.id", f"Expected `int`, got `{kind}`"))
    timestamp_ms = None
    if event.timestamp is not None:
        try:
            timestamp_ms = _timestamp_ms(event.timestamp)
        except ValueError as exc:
            errors.append(FieldError("timestamp", str(exc)))
    target = event.target
    if target is not None:
        target.type = target.type.lower()
        if not is_target_type(target.type):
            errors.append(FieldError("target.type", f"must match {TARGET_TYPE}"))
    if type(event.criticality) is CriticalityRef:
        event.criticality = event.criticality.id
    free = [("detail", event.detail)]
    if event.payload is not None:
        free.append(("payload.data", event.payload.data))
    extra: dict[str, Any] = {}
    if not item.keys() <= FIELDS:
        extra = {key: value for key, value in item.items() if key not in FIELDS}
        free += extra.items()
    for name, fields in _OPEN_FIELDS:
        ref = item.get(name)
        if ref and not ref.keys() <= fields:
            free += [(f"{name}.{key}", ref[key]) for key in ref.keys() - fields]
    errors += [FieldError(name, _TOO_DEEP) for name, value in free if _too_deep(value)]
    if errors:
        return errors
    return Checked(event, item, extra, timestamp_ms)


_OPEN_FIELDS: Final = tuple(
    (name, frozenset(kind.__struct_fields__))
    for name, kind in (
        ("endpoint", EndpointRef),
        ("sim", SimRef),
        ("imsi", ImsiRef),
        ("user", UserRef),
    )
)


def is_target_type(text: str) -> bool:
    """Whether ``text`` (lowercased) is a target type: ``TARGET_TYPE``."""
    return _TARGET_TYPE.fullmatch(text) is not None


def reference(name: str, ref: Struct, sent: Mapping[str, Any]) -> dict[str, Any]:
    """A reference as the record keeps it: its named fields that were sent (converted), in
    their declared order, then its unknown fields as sent."""
    kept: dict[str, Any] = msgspec.to_builtins(ref)  # UNSET fields (not sent) left out
    raw = sent.get(name)
    if raw is not None and len(raw) > len(kept):
        kept.update({key: value for key, value in raw.items() if key not in kept})
    return kept


def _timestamp_ms(value: str | float) -> int:
    """Unix ms of a timestamp as sent: ISO 8601 text, or Unix seconds (ms beyond 2e10)."""
    if isinstance(value, str):
        return _iso_ms(value)
    seconds = value if abs(value) <= 2e10 else value / 1000
    try:
        moment = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        moment = datetime.max  # out of range, refused below
    return to_ms(in_range(moment))


def _iso_ms(text: str) -> int:
    """Unix ms of ISO 8601 text: Herald's own form (``2026-11-01T10:00:00.123Z``, what
    producers mostly send) read by slicing, any other by ``parse_timestamp``."""
    if (
        len(text) == 24
        and text[19] == "."
        and text[23] == "Z"
        and text[10] == "T"
        and text[13] == text[16] == ":"
        and text.isascii()
    ):
        clock = text[11:13] + text[14:16] + text[17:19] + text[20:23]
        if clock.isdigit():
            hours, minutes, seconds = int(clock[:2]), int(clock[2:4]), int(clock[4:6])
            if hours < 24 and minutes < 60 and seconds < 60:
                day = _day_ms(text[:10])
                if day is not None:
                    return day + ((hours * 60 + minutes) * 60 + seconds) * 1000 + int(clock[6:])
    return to_ms(parse_timestamp(text))


@lru_cache(maxsize=1024)
def _day_ms(date: str) -> int | None:
    """Unix ms of a ``YYYY-MM-DD`` day at midnight UTC, None if it is not one."""
    digits = date.replace("-", "")
    if len(date) != 10 or date[4] != "-" or date[7] != "-" or not digits.isdigit():
        return None
    if date < "1970":  # before what Herald serves: parse_timestamp says so
        return None
    try:
        return to_ms(datetime(int(date[:4]), int(date[5:7]), int(date[8:]), tzinfo=UTC))
    except ValueError:
        return None


def _too_deep(value: Any) -> bool:
    """Whether free JSON nests deeper than ``MAX_JSON_DEPTH`` levels."""
    if not isinstance(value, dict | list):
        return False
    return json_depth(value, MAX_JSON_DEPTH + 1) > MAX_JSON_DEPTH


def json_depth(value: Any, stop: int) -> int:
    """How deep ``value`` nests (a scalar is 0, ``[1]`` is 1), counted up to ``stop``."""
    deepest = 0
    level: list[Any] = [value]
    while level and deepest < stop:
        inner: list[Any] = []
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


_AT = re.compile(r" - at `\$(.*)`$")
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_MISSING = re.compile(r"^Object missing required field `(.+)`$")


def _field_error(exc: msgspec.ValidationError, prefix: str | None = None) -> FieldError:
    """msgspec's message as a field (dotted) and a reason: ``Expected `int` >= 0 - at
    `$.event_type.id``` reads ``event_type.id``, ``Expected `int` >= 0``."""
    message = str(exc)
    path: list[str] = [prefix] if prefix else []
    at = _AT.search(message)
    if at:
        message = message[: at.start()]
        path += [name or index for name, index in _STEP.findall(at.group(1))]
    missing = _MISSING.match(message)
    if missing:
        path.append(missing.group(1))
        message = "Field required"
    if path[:1] == ["criticality"]:
        path = path[:1]  # the object form's id is the criticality
    return FieldError(".".join(path) or "body", message)


def schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON Schema of ``EventIn`` (a ``$ref``) and its definitions, referenced as
    ``#/components/schemas/{name}``."""
    (ref,), definitions = msgspec.json.schema_components(
        [EventIn], ref_template="#/components/schemas/{name}"
    )
    properties = definitions["EventIn"]["properties"]
    for name, description in DESCRIPTIONS.items():
        properties[name]["description"] = description
    served = {"$ref": "#/components/schemas/CriticalityRef"}  # inlined: one field's form
    forms = properties["criticality"]["anyOf"]
    forms[forms.index(served)] = definitions.pop("CriticalityRef")
    definitions["EventIn"]["additionalProperties"] = True
    for kind in (EndpointRef, SimRef, ImsiRef, UserRef):
        definitions[kind.__name__]["additionalProperties"] = True
    return ref, definitions
