"""The plain records of the device-state projection, as the store takes and returns them."""

from __future__ import annotations

from dataclasses import dataclass

DEVICE_SORTS: dict[str, str] = {
    "last_seen": "last_event_ms",
    "id": "endpoint_id",
    "name": "endpoint_name",
    "status": "status",
    "country": "country",
    "operator": "operator",
    "updated": "updated_ms",
}
"""Public sort field of the endpoint list -> column."""


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """One endpoint's state: the columns a list filters on, and the whole state as JSON
    (``herald.devices.state``). ``endpoint_key`` is the endpoint's id in decimal, or its name
    when it has no id."""

    organisation_id: int
    endpoint_key: str
    endpoint_id: int | None
    endpoint_name: str | None
    status: int
    country: str | None
    operator: str | None
    last_event_ms: int
    updated_ms: int
    state: str


@dataclass(frozen=True, slots=True)
class DeviceQuery:
    """A page of endpoint states: scoped, filtered (each tuple: any of), sorted."""

    organisation_ids: tuple[int, ...] | None
    statuses: tuple[int, ...] = ()
    countries: tuple[str, ...] = ()
    operators: tuple[str, ...] = ()
    endpoints: tuple[str, ...] = ()  # endpoint keys (an id in decimal) or names
    name_contains: tuple[str, ...] = ()  # substrings of the name, ignoring ASCII case
    seen_after_ms: int | None = None  # last event at or after
    seen_before_ms: int | None = None  # last event before
    sort: tuple[tuple[str, bool], ...] = (("last_seen", True),)  # (DEVICE_SORTS key, desc)
    page: int = 1
    per_page: int = 100
    time_limit: float | None = None  # seconds; past it QueryTimeout (None: the CLI's own)


@dataclass(frozen=True, slots=True)
class Freshness:
    """What the written device states include: every event up to log position ``position``,
    and every event committed before ``as_of_ms`` (0: not known yet)."""

    position: int
    as_of_ms: int
