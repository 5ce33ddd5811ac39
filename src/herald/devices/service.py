"""What the device routes answer: emnify's connectivity shape, the fleet list's parameters.

No HTTP here: a bad parameter is an ``InvalidParameter`` naming it, which the routes answer
as a 422 problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from herald.devices import state as device_state
from herald.devices.state import Status
from herald.store.device_records import DEVICE_SORTS, DeviceQuery, DeviceRow
from herald.timefmt import format_ms, parse_timestamp, to_ms

MAX_PER_PAGE = 1000
DEFAULT_PER_PAGE = 100
MAX_VALUES = 50  # values of one filter parameter
LIST_PARAMS = frozenset(
    {
        "status",
        "country",
        "operator",
        "last_seen_before",
        "last_seen_after",
        "sort",
        "page",
        "per_page",
    }
)


class InvalidParameter(ValueError):
    """A query parameter the routes refuse: which, and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def status_ref(value: int) -> dict[str, Any]:
    return {"id": value, "description": Status(value).name}


def endpoint_key(path_value: str) -> str:
    """The state's key of an ``/endpoint/{id}`` path: an id in decimal, else a name."""
    if path_value.isascii() and path_value.isdigit():
        return str(int(path_value))
    return path_value


def connectivity(row: DeviceRow) -> dict[str, Any]:
    """``GET /endpoint/{id}/connectivity`` as emnify answers it."""
    folded = device_state.loads(row.state)
    return {
        "status": status_ref(row.status),
        "location": device_state.location(folded),
        "pdp_context": device_state.pdp_context(folded),
        "services": device_state.services(folded),
    }


def summary(row: DeviceRow) -> dict[str, Any]:
    """One endpoint of the fleet list: who it is, its connectivity, when last seen."""
    folded = device_state.loads(row.state)
    endpoint = device_state.value(folded, "endpoint") or {}
    return {
        "id": row.endpoint_id,
        "name": row.endpoint_name,
        "imei": endpoint.get("imei"),
        "ip_address": endpoint.get("ip_address"),
        "organisation": {"id": row.organisation_id},
        **connectivity(row),
        "sim_status": device_state.value(folded, "sim"),
        "quota_status": device_state.value(folded, "quota"),
        "last_seen": format_ms(row.last_event_ms),
        "updated": format_ms(row.updated_ms),
    }


def status_counts(counts: Mapping[int, int]) -> dict[str, Any]:
    """Endpoints per status (every status, zero included) and in all."""
    return {
        "total": sum(counts.values()),
        "counts": [
            {"status": status_ref(int(status)), "count": counts.get(int(status), 0)}
            for status in Status
        ],
    }


def _values(params: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = params.get(name)
    if raw is None:
        return ()
    values = tuple(part.strip() for part in raw.split("|"))
    if len(values) > MAX_VALUES:
        raise InvalidParameter(name, f"at most {MAX_VALUES} values")
    if any(not value or len(value) > device_state.MAX_TEXT for value in values):
        raise InvalidParameter(name, f"values must be 1 to {device_state.MAX_TEXT} characters")
    return values


def _status(value: str) -> int:
    if value.isascii() and value.isdigit() and int(value) in Status._value2member_map_:
        return int(value)
    named = Status.__members__.get(value.upper())
    if named is None:
        known = ", ".join(f"{s.value} ({s.name})" for s in Status)
        raise InvalidParameter("status", f"unknown status {value!r} (known: {known})")
    return int(named)


def _time(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        return to_ms(parse_timestamp(raw))
    except (ValueError, OverflowError):
        raise InvalidParameter(
            name, "must be an ISO 8601 time, e.g. 2026-11-01T00:00:00Z"
        ) from None


def _whole(params: Mapping[str, str], name: str, default: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= high:
        raise InvalidParameter(name, f"must be a whole number from 1 to {high}")
    return int(raw)


def _sort(raw: str | None) -> tuple[tuple[str, bool], ...]:
    if not raw:
        return (("last_seen", True),)
    parts = raw.split(",")
    if len(parts) > len(DEVICE_SORTS):
        raise InvalidParameter("sort", f"at most {len(DEVICE_SORTS)} fields")
    keys = []
    for part in parts:
        name = part.strip()
        descending = name.startswith("-")
        name = name.lstrip("+-")
        if name not in DEVICE_SORTS:
            raise InvalidParameter(
                "sort", f"cannot sort by {name!r} (fields: {', '.join(DEVICE_SORTS)})"
            )
        keys.append((name, descending))
    return tuple(keys)


def list_query(params: Mapping[str, str], scope: tuple[int, ...] | None) -> DeviceQuery:
    """The page of endpoint states the parameters ask for, in the caller's ``scope``."""
    unknown = sorted(set(params) - LIST_PARAMS)
    if unknown:
        raise InvalidParameter(
            unknown[0], f"unknown parameter (known: {', '.join(sorted(LIST_PARAMS))})"
        )
    after, before = _time(params, "last_seen_after"), _time(params, "last_seen_before")
    if after is not None and before is not None and after >= before:
        raise InvalidParameter("last_seen_after", "must be before last_seen_before")
    return DeviceQuery(
        organisation_ids=scope,
        statuses=tuple(sorted({_status(value) for value in _values(params, "status")})),
        countries=_values(params, "country"),
        operators=_values(params, "operator"),
        seen_after_ms=after,
        seen_before_ms=before,
        sort=_sort(params.get("sort")),
        page=_whole(params, "page", 1, 10**6),
        per_page=_whole(params, "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE),
    )


def sort_echo(query: DeviceQuery) -> str:
    return ",".join(("-" if desc else "") + name for name, desc in query.sort)


def filter_echo(params: Mapping[str, str]) -> str:
    names = ("status", "country", "operator", "last_seen_before", "last_seen_after")
    return ",".join(f"{name}:{params[name]}" for name in names if name in params)
