"""An EventFilter applied in Python to one stored record, as the SQL of a list query would.

The live stream reads the log in commit order and keeps the entries its filter selects;
this is the same selection ``store.sql.where_clause`` makes in the database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from herald.store import EventFilter
from herald.timefmt import parse_timestamp, to_ms

Record = dict[str, Any]


def _nested(record: Record, key: str, field: str) -> Any:
    value = record.get(key)
    return value.get(field) if isinstance(value, dict) else None


def _path(key: str, field: str) -> Callable[[Record], Any]:
    return lambda record: _nested(record, key, field)


# EventFilter attribute -> where its value sits in the record (equality, any of the values).
_EQUALS: tuple[tuple[str, Callable[[Record], Any]], ...] = (
    ("organisation_ids", _path("organisation", "id")),
    ("type_ids", _path("event_type", "id")),
    ("severities", _path("event_severity", "id")),
    ("sources", _path("event_source", "id")),
    ("criticalities", _path("criticality", "id")),
    ("endpoint_ids", _path("endpoint", "id")),
    ("endpoint_names", _path("endpoint", "name")),
    ("sim_ids", _path("sim", "id")),
    ("user_ids", _path("user", "id")),
    ("usernames", _path("user", "username")),
    ("iccids", _path("sim", "iccid")),
    ("imsis", _path("imsi", "imsi")),
    ("imeis", _path("endpoint", "imei")),
    ("ip_addresses", _path("endpoint", "ip_address")),
    ("target_types", _path("target", "type")),
    ("target_ids", _path("target", "id")),
    ("monikers", lambda record: record.get("moniker")),
    ("providers", lambda record: record.get("provider")),
)


def _timestamp_ms(record: Record) -> int | None:
    raw = record.get("timestamp")
    try:
        return to_ms(parse_timestamp(raw)) if isinstance(raw, str) else None
    except ValueError:
        return None


def _contains(haystack: Any, needle: str) -> bool:
    """SQLite's ``LIKE '%needle%'``: a substring, case-insensitive."""
    return isinstance(haystack, str) and needle.casefold() in haystack.casefold()


def matches(flt: EventFilter, record: Record) -> bool:
    """Whether ``flt`` selects ``record`` (a stored event as the API serves it)."""
    for attribute, value_of in _EQUALS:
        wanted: tuple[Any, ...] | None = getattr(flt, attribute)
        if wanted is None or (not wanted and attribute != "organisation_ids"):
            continue
        value = value_of(record)
        if isinstance(value, bool) or value not in wanted:
            return False
    if flt.alert is not None and record.get("alert") is not flt.alert:
        return False
    if flt.from_ms is not None or flt.until_ms is not None:
        ts = _timestamp_ms(record)
        if ts is None:
            return False
        if flt.from_ms is not None and ts < flt.from_ms:
            return False
        if flt.until_ms is not None and ts > flt.until_ms:
            return False
    tags = _nested(record, "endpoint", "tags")
    if flt.tags and not any(_contains(tags, tag) for tag in flt.tags):
        return False
    return not flt.description or _contains(record.get("description"), flt.description)
