"""The event-type catalogue: emnify/1NCE types, Stacuity monikers and custom codes.

Herald's type id for an emnify or 1NCE type is the emnify id (0-60). A Stacuity moniker that
names the same happening maps to that id; one with no equivalent has its own system id in
1000-1099. Codes from ``CUSTOM_CODE_MIN`` up are custom (free for business apps) and are not
listed. The data lives in ``data/*.json`` inside the package.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib.resources import files
from typing import TypeVar

__all__ = [
    "CRITICALITIES",
    "CUSTOM_CODE_MIN",
    "PROVIDER_ID_MAX",
    "SEVERITIES",
    "SOURCES",
    "UNKNOWN_TYPES",
    "Catalog",
    "EventType",
    "Moniker",
    "Scope",
    "load_catalog",
    "normalise_severity",
    "normalise_source",
]


class Scope(StrEnum):
    """The kind of entity an event concerns."""

    ENDPOINT = "endpoint"
    SIM = "sim"
    USER = "user"
    ROUTING_TARGET = "routing_target"
    ORGANISATION = "organisation"
    CUSTOM = "custom"


SEVERITIES: dict[int, str] = {0: "Info", 1: "Warn", 2: "Critical"}
"""emnify/1NCE event severity ids."""

SOURCES: dict[int, str] = {0: "Network", 1: "Policy Control", 2: "API"}
"""emnify/1NCE event source ids."""

CRITICALITIES: dict[int, str] = {
    0: "Not applicable",
    1: "Critical",
    2: "High",
    3: "Medium",
    4: "Low",
    5: "Trivial",
}
"""Platform event API criticality levels (0 or null: not applicable)."""

CUSTOM_CODE_MIN: int = 10000
"""Lowest custom event code; codes below it are reserved for system types."""

PROVIDER_ID_MAX: int = 999
"""Highest emnify/1NCE type id Herald's catalogue can hold (1000 up are Herald's own)."""

UNKNOWN_TYPES: dict[str, int] = {"emnify": 1100, "1nce": 1101, "stacuity": 1102}
"""Per provider, the generic type of a record whose type id or moniker Herald does not know."""

_SEVERITY_NAMES: dict[str, int] = {"info": 0, "warn": 1, "warning": 1, "critical": 2}
_SOURCE_NAMES: dict[str, int] = {"network": 0, "policy control": 1, "api": 2}
_SEPARATORS = re.compile(r"[\s_-]+")


def _normalise(value: int | str, names: Mapping[str, int], valid: Mapping[int, str]) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value in valid else None
    text = _SEPARATORS.sub(" ", value).strip().casefold()
    if text.isascii() and text.isdigit():
        number = int(text)
        return number if number in valid else None
    return names.get(text)


def normalise_severity(value: int | str) -> int | None:
    """Severity id for an id or a name ("Info", "WARN", "Warning", "CRITICAL", "1"...)."""
    return _normalise(value, _SEVERITY_NAMES, SEVERITIES)


def normalise_source(value: int | str) -> int | None:
    """Source id for an id or a name ("Network", "Policy Control", "API", "2"...)."""
    return _normalise(value, _SOURCE_NAMES, SOURCES)


@dataclass(frozen=True, slots=True)
class EventType:
    """One catalogued event type with its defaults.

    ``onece_description`` is 1NCE's spelling where it differs from ``description``;
    ``catalogues`` lists which catalogues name the type ("emnify", "1nce", "stacuity");
    ``explanation`` says what happened and ``state_after`` the device's state after it.
    """

    id: int
    description: str
    group: str
    catalogues: tuple[str, ...]
    onece_description: str | None
    default_severity: int | None
    default_source: int | None
    default_alert: bool | None
    scope: Scope
    monikers: tuple[str, ...]
    explanation: str | None = None
    state_after: str | None = None

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (as served by ``GET /api/v1/event/type``)."""
        return {
            "id": self.id,
            "description": self.description,
            "group": self.group,
            "catalogues": list(self.catalogues),
            "onece_description": self.onece_description,
            "default_severity": self.default_severity,
            "default_source": self.default_source,
            "default_alert": self.default_alert,
            "scope": self.scope.value,
            "monikers": list(self.monikers),
            "explanation": self.explanation,
            "state_after": self.state_after,
        }


@dataclass(frozen=True, slots=True)
class Moniker:
    """A Stacuity event moniker and the Herald type id it resolves to."""

    moniker: str
    name: str
    scope: Scope
    type_id: int

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "moniker": self.moniker,
            "name": self.name,
            "scope": self.scope.value,
            "type_id": self.type_id,
        }


class Catalog:
    """Look-ups over the event types and the Stacuity monikers."""

    __slots__ = ("_by_id", "_by_moniker", "_monikers", "_types")

    def __init__(self, types: Iterable[EventType], monikers: Iterable[Moniker]) -> None:
        """Build the catalogue; raises ``ValueError`` if the data is inconsistent."""
        self._types = tuple(sorted(types, key=lambda t: t.id))
        self._by_id = {t.id: t for t in self._types}
        self._monikers = tuple(monikers)
        self._by_moniker = {m.moniker: m for m in self._monikers}
        if len(self._by_id) != len(self._types):
            raise ValueError("duplicate event type ids")
        if len(self._by_moniker) != len(self._monikers):
            raise ValueError("duplicate monikers")
        for event_type in self._types:
            if not 0 <= event_type.id < CUSTOM_CODE_MIN:
                raise ValueError(f"type {event_type.id} is not a system type id")
            for name in event_type.monikers:
                known = self._by_moniker.get(name)
                if known is None or known.type_id != event_type.id:
                    raise ValueError(
                        f"type {event_type.id} lists moniker {name!r} not mapped to it"
                    )
        for moniker in self._monikers:
            target = self._by_id.get(moniker.type_id)
            if target is None or moniker.moniker not in target.monikers:
                raise ValueError(f"moniker {moniker.moniker!r} names type {moniker.type_id}")

    def types(self) -> list[EventType]:
        """All catalogued types, sorted by id."""
        return list(self._types)

    def get(self, type_id: int) -> EventType | None:
        """The catalogued type, or None (also for custom codes, which are not listed)."""
        return self._by_id.get(type_id)

    def is_known(self, type_id: int) -> bool:
        """True for catalogued ids and for any custom code."""
        return type_id in self._by_id or self.is_custom(type_id)

    def is_custom(self, type_id: int) -> bool:
        """True for custom codes (>= ``CUSTOM_CODE_MIN``)."""
        return type_id >= CUSTOM_CODE_MIN

    def describe(self, type_id: int) -> str:
        """The type's description; "Custom event <id>" for custom codes."""
        event_type = self._by_id.get(type_id)
        if event_type is not None:
            return event_type.description
        if self.is_custom(type_id):
            return f"Custom event {type_id}"
        return f"Unknown event type {type_id}"

    def provider_type(self, provider: str, type_id: int) -> int:
        """Herald's type for an emnify/1NCE type id: itself if catalogued, else the
        provider's generic unknown type (``UNKNOWN_TYPES``)."""
        if 0 <= type_id <= PROVIDER_ID_MAX and type_id in self._by_id:
            return type_id
        return UNKNOWN_TYPES[provider]

    def monikers(self) -> list[Moniker]:
        """All Stacuity monikers, in Stacuity's table order."""
        return list(self._monikers)

    def by_moniker(self, moniker: str) -> Moniker | None:
        """The moniker entry for an exact Stacuity moniker, or None."""
        return self._by_moniker.get(moniker)

    def moniker_for(self, type_id: int) -> str | None:
        """The first moniker mapping to the type, if any."""
        event_type = self._by_id.get(type_id)
        if event_type is None or not event_type.monikers:
            return None
        return event_type.monikers[0]

    def severities(self) -> list[dict[str, object]]:
        """Severity levels as ``[{"id": 0, "description": "Info"}, ...]``."""
        return [{"id": key, "description": text} for key, text in SEVERITIES.items()]

    def sources(self) -> list[dict[str, object]]:
        """Event sources as ``[{"id": 0, "description": "Network"}, ...]``."""
        return [{"id": key, "description": text} for key, text in SOURCES.items()]

    def criticalities(self) -> list[dict[str, object]]:
        """Criticality levels as ``[{"id": 0, "description": "Not applicable"}, ...]``."""
        return [{"id": key, "description": text} for key, text in CRITICALITIES.items()]


_T = TypeVar("_T")


def _get(obj: Mapping[str, object], key: str, kind: type[_T], where: str) -> _T:
    value = obj.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{where}: {key!r} must be {kind.__name__}, got {value!r}")
    return value


def _get_optional(obj: Mapping[str, object], key: str, kind: type[_T], where: str) -> _T | None:
    return None if obj.get(key) is None else _get(obj, key, kind, where)


def _strings(obj: Mapping[str, object], key: str, where: str) -> tuple[str, ...]:
    items = _get(obj, key, list, where)
    if not all(isinstance(item, str) for item in items):
        raise ValueError(f"{where}: {key!r} must be a list of strings")
    return tuple(str(item) for item in items)


def _records(raw: object, key: str) -> list[Mapping[str, object]]:
    items = raw.get(key) if isinstance(raw, dict) else None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ValueError(f"catalogue data needs a list of objects under {key!r}")
    return items


def _event_type(record: Mapping[str, object]) -> EventType:
    where = f"event type {record.get('id')!r}"
    return EventType(
        id=_get(record, "id", int, where),
        description=_get(record, "description", str, where),
        group=_get(record, "group", str, where),
        catalogues=_strings(record, "catalogues", where),
        onece_description=_get_optional(record, "onece_description", str, where),
        default_severity=_get_optional(record, "default_severity", int, where),
        default_source=_get_optional(record, "default_source", int, where),
        default_alert=_get_optional(record, "default_alert", bool, where),
        scope=Scope(_get(record, "scope", str, where)),
        monikers=_strings(record, "monikers", where),
        explanation=_get_optional(record, "explanation", str, where),
        state_after=_get_optional(record, "state_after", str, where),
    )


def _moniker(record: Mapping[str, object]) -> Moniker:
    where = f"moniker {record.get('moniker')!r}"
    return Moniker(
        moniker=_get(record, "moniker", str, where),
        name=_get(record, "name", str, where),
        scope=Scope(_get(record, "scope", str, where)),
        type_id=_get(record, "type_id", int, where),
    )


def _read_json(name: str) -> object:
    text = (files("herald.catalog") / "data" / name).read_text(encoding="utf-8")
    parsed: object = json.loads(text)
    return parsed


@cache
def load_catalog() -> Catalog:
    """The packaged catalogue, loaded once."""
    types = [_event_type(r) for r in _records(_read_json("event_types.json"), "types")]
    monikers = [_moniker(r) for r in _records(_read_json("stacuity_monikers.json"), "monikers")]
    return Catalog(types, monikers)
