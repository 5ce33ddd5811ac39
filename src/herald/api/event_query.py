"""From query parameters to an EventQuery: emnify's ``q`` filter, ``sort``, paging, cursor.

``q`` is a comma list of ``field:value``; several values of one field are joined with ``|``
(``q=type:3|5,severity:1``). The same fields work as plain parameters (``?type=3|5``).
Bad paging or sort answers 400, a bad filter 422, as emnify's API does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from herald.api.problems import field_problem
from herald.catalog import SEVERITIES, SOURCES, Catalog
from herald.store import SORT_COLUMNS, EventFilter, EventQuery, InvalidQuery, SortKey
from herald.store.sql import decode_cursor
from herald.timefmt import RANGE_TEXT, now_ms, parse_timestamp, to_ms

MAX_PER_PAGE = 1000
DEFAULT_PER_PAGE = 100
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def _int(value: str) -> int:
    number = int(value)
    if not -(2**63) <= number < 2**63:
        raise ValueError("out of range")
    return number


def _level(names: Mapping[int, str]) -> Callable[[str], int]:
    by_name = {name.lower(): level for level, name in names.items()}
    by_name.update({"warning": 1} if "warn" in by_name else {})

    def parse(value: str) -> int:
        if value.lower() in by_name:
            return by_name[value.lower()]
        return _int(value)

    return parse


def _moment(value: str) -> int:
    return to_ms(parse_timestamp(value))  # a date alone is its midnight, UTC


@dataclasses.dataclass(frozen=True)
class _Field:
    """How one public filter field parses and which EventFilter attribute it fills."""

    attribute: str
    parse: Callable[[str], Any]
    text_attribute: str | None = None  # where non-numeric values go (endpoint name...)


_FIELDS: dict[str, _Field] = {
    "type": _Field("type_ids", _int),
    "code": _Field("type_ids", _int),
    "severity": _Field("severities", _level(SEVERITIES)),
    "source": _Field("sources", _level(SOURCES)),
    "criticality": _Field("criticalities", _int),
    "organisation": _Field("organisation_ids", _int),
    "endpoint": _Field("endpoint_ids", _int, "endpoint_names"),
    "sim": _Field("sim_ids", _int),
    "user": _Field("user_ids", _int, "usernames"),
    "iccid": _Field("iccids", str),
    "iccid_with_luhn": _Field("iccids", lambda v: v[:-1] if len(v) > 19 else v),
    "imsi": _Field("imsis", str),
    "imei": _Field("imeis", str),
    "ip_address": _Field("ip_addresses", str),
    "target_type": _Field("target_types", str),
    "target_id": _Field("target_ids", str),
    "moniker": _Field("monikers", str),
    "provider": _Field("providers", str),
    "tags": _Field("tags", str),
}
_SCALARS = {"alert", "from", "until", "description"}
FILTER_FIELDS = sorted([*_FIELDS, *_SCALARS])
PARAMS = frozenset({"q", "sort", "page", "per_page", "cursor", *FILTER_FIELDS})


def parse_filters(
    params: Mapping[str, str], *, scope: tuple[int, ...] | None, catalog: Catalog
) -> tuple[EventFilter, str]:
    """The filter that ``q`` and the plain filter parameters ask for, and its echo."""
    terms: list[tuple[str, str, str]] = []  # (name, raw value, where it came from)
    if params.get("q"):
        for part in params["q"].split(","):
            name, sep, value = part.partition(":")
            name = name.strip()
            if not sep or not name:
                raise field_problem(422, "q", f"{part!r} is not field:value")
            terms.append((name, value.strip(), f"q.{name}"))
    terms.extend((name, params[name], name) for name in FILTER_FIELDS if name in params)

    values: dict[str, list[Any]] = {}
    scalars: dict[str, Any] = {}
    scalar_origin: dict[str, str] = {}
    for name, raw, where in terms:
        if name in _SCALARS:
            scalars[name] = _scalar(name, raw, where)
            scalar_origin[name] = where
            continue
        spec = _FIELDS.get(name)
        if spec is None:
            raise field_problem(
                422, where, f"unknown filter field (known: {', '.join(FILTER_FIELDS)})"
            )
        for item in (v.strip() for v in raw.split("|")):
            if not item:
                raise field_problem(422, where, "empty value")
            if spec.attribute == "monikers" and catalog.by_moniker(item) is None:
                raise field_problem(422, where, f"unknown moniker {item!r}")
            try:
                values.setdefault(spec.attribute, []).append(spec.parse(item))
            except ValueError:
                if spec.text_attribute is None:
                    raise field_problem(422, where, f"{item!r} is not a valid value") from None
                values.setdefault(spec.text_attribute, []).append(item)

    from_ms, until_ms = scalars.get("from"), scalars.get("until")
    if from_ms is not None and until_ms is None:
        until_ms = now_ms()  # a range with only its start runs to now
    if from_ms is not None and until_ms is not None and from_ms > until_ms:
        raise field_problem(422, scalar_origin["from"], "is after until")

    organisations = values.pop("organisation_ids", None)
    if scope is not None:
        organisations = [o for o in (organisations or scope) if o in scope]
    flt = EventFilter(
        organisation_ids=tuple(organisations) if organisations is not None else None,
        alert=scalars.get("alert"),
        from_ms=from_ms,
        until_ms=until_ms,
        description=scalars.get("description"),
        **{attribute: tuple(items) for attribute, items in values.items()},
    )
    echo = ",".join(f"{name}:{raw}" for name, raw, _ in terms)
    return flt, echo


def _scalar(name: str, raw: str, where: str) -> Any:
    if name == "description":
        return raw
    if name == "alert":
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise field_problem(422, where, "must be true or false")
    try:
        return _moment(raw)
    except ValueError:
        raise field_problem(
            422, where, f"must be an ISO 8601 time {RANGE_TEXT}, e.g. 2026-11-01T00:00:00Z"
        ) from None


def parse_sort(raw: str | None) -> tuple[SortKey, ...]:
    """``sort=-timestamp,type`` as sort keys; 400 for an unknown field."""
    if not raw:
        return (SortKey("timestamp", True),)
    keys = []
    for part in raw.split(","):
        name = part.strip()
        descending = name.startswith("-")
        if name[:1] in ("+", "-"):
            name = name[1:]  # one sign at most: "+-+-id" is no sort
        if name not in SORT_COLUMNS:
            raise field_problem(
                400, "sort", f"cannot sort by {name!r} (fields: {', '.join(SORT_COLUMNS)})"
            )
        keys.append(SortKey(name, descending))
    return tuple(keys)


def parse_paging(params: Mapping[str, str]) -> tuple[int, int]:
    """``page`` (from 1) and ``per_page`` (1..1000, default 100); 400 when out of range."""
    page = _bounded(params, "page", 1, 1, 10**9)
    per_page = _bounded(params, "per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE)
    return page, per_page


def _bounded(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise field_problem(400, name, "must be a whole number") from None
    if not low <= value <= high:
        raise field_problem(400, name, f"must be between {low} and {high}")
    return value


def _cursor(cursor: str) -> tuple[int, int]:
    try:
        return decode_cursor(cursor)
    except InvalidQuery as exc:
        raise field_problem(400, "cursor", str(exc)) from None


def build_query(
    params: Mapping[str, str],
    *,
    scope: tuple[int, ...] | None,
    catalog: Catalog,
    fixed: Mapping[str, Any] | None = None,
) -> tuple[EventQuery, str, str]:
    """The EventQuery the parameters ask for, with the filter and sort echoes.

    ``fixed`` pins filter attributes from the path (``/endpoint/{id}/event``).
    """
    flt, echo = parse_filters(params, scope=scope, catalog=catalog)
    if fixed:
        flt = dataclasses.replace(flt, **fixed)
    sort = parse_sort(params.get("sort"))
    page, per_page = parse_paging(params)
    cursor = params.get("cursor") or None
    if cursor is not None and not all(-(2**63) <= part < 2**63 for part in _cursor(cursor)):
        raise field_problem(400, "cursor", "cursor is not one this API issued")
    if cursor is not None and [k.field for k in sort] not in (
        ["timestamp"],
        ["id"],
        ["timestamp", "id"],
    ):
        raise field_problem(400, "cursor", "cursor paging needs sort by timestamp or id")
    query = EventQuery(filter=flt, sort=sort, page=page, per_page=per_page, cursor=cursor)
    sort_echo = ",".join(("-" if k.descending else "") + k.field for k in sort)
    return query, echo, sort_echo
