"""What the device routes answer: emnify's connectivity shape, the fleet list's parameters.

No HTTP here: a bad parameter is an ``InvalidParameter`` naming it (a ``herald.errors``
``Invalid``: ``api/problems.py`` answers it 422); an organisation outside the caller's is
``Forbidden``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from herald.auth import Principal
from herald.devices import state as device_state
from herald.devices.answers import (
    Connectivity,
    EndpointSummary,
    StatusCounts,
    StatusLevel,
)
from herald.devices.state import Status
from herald.errors import Forbidden, Invalid
from herald.query.syntax import FilterError, q_terms
from herald.store.device_records import DEVICE_SORTS, DeviceQuery, DeviceRow
from herald.timefmt import format_ms, now_ms, parse_timestamp, to_ms

MAX_PER_PAGE = 1000
DEFAULT_PER_PAGE = 100
MAX_VALUES = 50  # values of one filter term
MAX_SUBSTRINGS = 20  # values of ``name``: each one is a LIKE over the organisation's rows
MAX_Q = 4096  # characters of ``q``
MAX_QUIET_DAYS = 3650
FILTERS = (
    "status",
    "country",
    "operator",
    "endpoint",
    "name",
    "last_seen_before",
    "last_seen_after",
    "quiet",
)
"""The fleet list's filter terms: plain parameters, or terms of ``q`` (``q=status:1|0``)."""
LIST_PARAMS = frozenset({*FILTERS, "q", "sort", "page", "per_page"})
_UNITS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}
_QUIET = re.compile(r"(\d{1,7})([mhd])")


class InvalidParameter(Invalid):
    """A query parameter the routes refuse: which, and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}", [{"field": field, "reason": reason}])
        self.field = field
        self.reason = reason


def scope_for(principal: Principal, organisation: str | None) -> tuple[int, ...] | None:
    """The caller's organisations, or the one ``organisation`` asks for within them."""
    scope = principal.organisation_scope
    if organisation is None:
        return scope
    if not (organisation.isascii() and organisation.isdigit()) or not (
        1 <= int(organisation) <= 2**63 - 1
    ):
        raise InvalidParameter("organisation", "must be a whole number from 1")
    wanted = int(organisation)
    if scope is not None and wanted not in scope:
        raise Forbidden("this token reads only its own organisation's endpoints")
    return (wanted,)


_NAMES = {int(status): status.name for status in Status}


def status_ref(value: int) -> StatusLevel:
    return {"id": value, "description": _NAMES[value]}


def endpoint_key(path_value: str) -> str:
    """The state's key of an ``/endpoint/{id}`` path: an id in decimal, else a name."""
    if path_value.isascii() and path_value.isdigit():
        return str(int(path_value))
    return path_value


def connectivity(row: DeviceRow, folded: device_state.DeviceState | None = None) -> Connectivity:
    """``GET /endpoint/{id}/connectivity`` as emnify answers it (``folded``: the row's state,
    if loaded already)."""
    if folded is None:
        folded = device_state.loads(row.state)
    return {
        "status": status_ref(row.status),
        "location": device_state.location(folded),
        "pdp_context": device_state.pdp_context(folded),
        "services": device_state.services(folded),
    }


def summary(row: DeviceRow) -> EndpointSummary:
    """One endpoint of the fleet list: who it is, its connectivity, when last seen."""
    folded = device_state.loads(row.state)
    endpoint = device_state.endpoint(folded)
    return {
        "id": row.endpoint_id,
        "name": row.endpoint_name,
        "imei": endpoint.get("imei"),
        "ip_address": endpoint.get("ip_address"),
        "organisation": {"id": row.organisation_id},
        **connectivity(row, folded),
        "sim_status": device_state.value(folded, "sim"),
        "quota_status": device_state.value(folded, "quota"),
        "last_seen": format_ms(row.last_event_ms),
        "updated": format_ms(row.updated_ms),
    }


def status_counts(counts: Mapping[int, int]) -> StatusCounts:
    """Endpoints per status (every status, zero included) and in all."""
    return {
        "total": sum(counts.values()),
        "counts": [
            {"status": status_ref(int(status)), "count": counts.get(int(status), 0)}
            for status in Status
        ],
    }


def _values(raw: str, where: str, most: int = MAX_VALUES) -> tuple[str, ...]:
    values = tuple(part.strip() for part in raw.split("|"))
    if len(values) > most:
        raise InvalidParameter(where, f"at most {most} values")
    if any(not value or len(value) > device_state.MAX_TEXT for value in values):
        raise InvalidParameter(where, f"values must be 1 to {device_state.MAX_TEXT} characters")
    return values


def _status(value: str, where: str) -> int:
    if value.isascii() and value.isdigit() and int(value) in Status._value2member_map_:
        return int(value)
    named = Status.__members__.get(value.upper())
    if named is None:
        known = ", ".join(f"{s.value} ({s.name})" for s in Status)
        raise InvalidParameter(where, f"unknown status {value!r} (known: {known})")
    return int(named)


def _time(raw: str, where: str) -> int:
    try:
        return to_ms(parse_timestamp(raw))
    except (ValueError, OverflowError):
        raise InvalidParameter(
            where, "must be an ISO 8601 time, e.g. 2026-11-01T00:00:00Z"
        ) from None


def _quiet(raw: str, where: str) -> int:
    """``quiet:6h``: how long without an event, in ms (minutes, hours or days)."""
    found = _QUIET.fullmatch(raw.strip())
    span = int(found.group(1)) * _UNITS[found.group(2)] if found else 0
    if not 0 < span <= MAX_QUIET_DAYS * _UNITS["d"]:
        raise InvalidParameter(
            where, f"must be minutes, hours or days (30m, 6h, 2d), at most {MAX_QUIET_DAYS}d"
        )
    return span


def _terms(params: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Each filter term given, as (value, where it was written): a plain parameter
    (``status``) or a term of ``q`` (``q.status``); each at most once."""
    terms = {name: (params[name], name) for name in FILTERS if name in params}
    q = params.get("q", "")
    if len(q) > MAX_Q:
        raise InvalidParameter("q", f"at most {MAX_Q} characters")
    try:
        written = q_terms(q)
    except FilterError as exc:
        raise InvalidParameter(exc.field, exc.reason) from None
    for term in written:
        if term.name not in FILTERS:
            known = ", ".join(FILTERS)
            raise InvalidParameter(term.where, f"unknown filter field (known: {known})")
        if term.name in terms:
            raise InvalidParameter(term.where, f"{term.name} is given twice")
        terms[term.name] = (term.raw, term.where)
    return terms


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


def list_query(
    params: Mapping[str, str], scope: tuple[int, ...] | None, now: int | None = None
) -> DeviceQuery:
    """The page of endpoint states the parameters ask for, in the caller's ``scope``."""
    unknown = sorted(set(params) - LIST_PARAMS)
    if unknown:
        raise InvalidParameter(
            unknown[0], f"unknown parameter (known: {', '.join(sorted(LIST_PARAMS))})"
        )
    terms = _terms(params)

    def values(name: str, most: int = MAX_VALUES) -> tuple[str, ...]:
        return _values(*terms[name], most) if name in terms else ()

    def moment(name: str) -> int | None:
        return _time(*terms[name]) if name in terms else None

    after, before = moment("last_seen_after"), moment("last_seen_before")
    if "quiet" in terms:
        quiet_since = (now_ms() if now is None else now) - _quiet(*terms["quiet"])
        before = quiet_since if before is None else min(before, quiet_since)
    if after is not None and before is not None and after >= before:
        raise InvalidParameter(terms["last_seen_after"][1], "must be before last_seen_before")
    statuses = {_status(value, terms["status"][1]) for value in values("status")}
    return DeviceQuery(
        organisation_ids=scope,
        statuses=tuple(sorted(statuses)),
        countries=values("country"),
        operators=values("operator"),
        endpoints=tuple(endpoint_key(value) for value in values("endpoint")),
        name_contains=values("name", MAX_SUBSTRINGS),
        seen_after_ms=after,
        seen_before_ms=before,
        sort=_sort(params.get("sort")),
        page=_whole(params, "page", 1, 10**6),
        per_page=_whole(params, "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE),
    )


def sort_echo(query: DeviceQuery) -> str:
    return ",".join(("-" if desc else "") + name for name, desc in query.sort)


def filter_echo(params: Mapping[str, str]) -> str:
    """The filter as asked (plain parameters, then ``q``), for the paging links."""
    plain = [f"{name}:{params[name]}" for name in FILTERS if name in params]
    return ",".join([*plain, *([params["q"]] if params.get("q") else [])])
