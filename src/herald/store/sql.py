"""SQL for event queries, shared by the backends (they differ only in their ``Dialect``)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from herald.events.types import EventQuery, SortKey, StatsQuery
from herald.query.fields import (
    BY_NAME,
    DEVICE_KEYS,
    FIELDS,
    STATS_GROUPS,
    Field,
    Match,
    Record,
    volume_mb,
)
from herald.query.filter import EventFilter, ascii_lower
from herald.record import NewEvent
from herald.store.errors import InvalidQuery

# Columns whose values the NewEvent holds already (checked and typed by build_event).
_GIVEN = {
    "ts": "timestamp_ms",
    "received": "received_ms",
    "organisation_id": "organisation_id",
    "type_id": "type_id",
    "severity": "severity",
    "source": "source",
    "alert": "alert",
    "criticality": "criticality",
    "provider": "provider",
    "external_id": "external_id",
}
_GIVEN_VALUES = attrgetter(*_GIVEN.values())
_EXTRACTED = tuple(
    (f.column, f.value) for f in FIELDS if f.column and f.column not in {"id", *_GIVEN}
)
LEAN_COLUMNS = frozenset(f.column for f in FIELDS if f.lean and f.column)
"""Columns SQLite leaves empty (``Field.lean``): filters read these fields from the record."""
EVENT_COLUMNS = (
    "id",
    *_GIVEN,
    *(column for column, _ in _EXTRACTED),
    "body",
    "volume_mb",
    "dictionary_id",
)
"""The events table's columns as ``event_row`` gives them."""


LEAN_EMPTY: dict[str, str | None] = {
    column: "" if column == "description" else None for column in sorted(LEAN_COLUMNS)
}
"""What a lean column holds on SQLite: NULL, or '' where 0001 declared it NOT NULL."""
LEAN_CLEARED = ", ".join(
    f"{column} = {'NULL' if empty is None else repr(empty)}" for column, empty in LEAN_EMPTY.items()
)
"""``SET`` assignments emptying the lean columns (store.records.compact_records)."""


def _left_empty(column: str) -> Callable[[Record], object]:
    empty = LEAN_EMPTY[column]
    return lambda _record: empty


def _nothing(_record: Record) -> None:
    return None


_EXTRACTED_LEAN = tuple(
    (column, _left_empty(column) if column in LEAN_EMPTY else value) for column, value in _EXTRACTED
)
KEY_COLUMNS = tuple(f.column for f in DEVICE_KEYS if f.column)
"""The device keys' columns: SQLite fills them only for events that name no endpoint."""
_EXTRACTED_KEYED = tuple(
    (column, _nothing if column in KEY_COLUMNS else value) for column, value in _EXTRACTED_LEAN
)
_ENDPOINT = BY_NAME["endpoint"].value


LOG_COLUMNS = "seq, organisation_id, type_id, dictionary_id, body, id, ts"
"""What a log read selects, in ``RecordMethods._log_entries``' order."""


def event_row(
    event: NewEvent, event_id: int, body: bytes, dictionary_id: int, lean: bool = False
) -> tuple[object, ...]:
    """The column values of one event, in ``EVENT_COLUMNS`` order: ``body`` is the record as
    stored, packed with dictionary ``dictionary_id`` (``store.records``); ``lean``, the
    ``LEAN_COLUMNS`` are left empty, and the ``KEY_COLUMNS`` too when the event names an
    endpoint (``device_keys`` finds those)."""
    record = event.record
    if not lean:
        extracted = _EXTRACTED
    else:
        extracted = _EXTRACTED_LEAN if _ENDPOINT(record) is None else _EXTRACTED_KEYED
    return (
        event_id,
        *_GIVEN_VALUES(event),
        *(value(record) for _, value in extracted),
        body,
        volume_mb(record),
        dictionary_id,
    )


DeviceKey = tuple[int, str, str, int]
"""A ``device_keys`` row: organisation, field name, value (as text), endpoint id."""


def device_keys(events: Iterable[NewEvent]) -> list[DeviceKey]:
    """The ``device_keys`` rows of ``events``: each device key an event names beside an
    endpoint, once, sorted (concurrent writers take their locks in the same order)."""
    return held_device_keys(
        (
            event.organisation_id,
            _ENDPOINT(event.record),
            *(f.value(event.record) for f in DEVICE_KEYS),
        )
        for event in events
    )


def held_device_keys(rows: Iterable[Sequence[Any]]) -> list[DeviceKey]:
    """``device_keys`` of rows of (organisation, endpoint, ``KEY_COLUMNS``' values)."""
    keys: set[DeviceKey] = set()
    for organisation_id, endpoint_id, *values in rows:
        if endpoint_id is None:
            continue
        for field, value in zip(DEVICE_KEYS, values, strict=True):
            if value is not None:
                keys.add((organisation_id, field.name, str(value), endpoint_id))
    return sorted(keys)


INSERT_DEVICE_KEYS = (
    "INSERT INTO device_keys (organisation_id, field, value, endpoint_id) "
    "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
)


def stored_body(event: NewEvent, event_id: int) -> bytes:
    """The record as stored and served: the event's record with its id (not modified), and
    the null keys of a record built without them (``record.with_null_keys``)."""
    return event.stored_body(event_id)


@dataclass(frozen=True, slots=True)
class Dialect:
    """What the backends write differently in a filter's SQL."""

    mark: str  # the driver's placeholder
    arrays: bool  # ``column = ANY(array)`` rather than ``column IN (?, ?, ...)``
    lower: str  # an expression lowering A-Z (only) of the column in ``{}``
    in_query: str  # ``{0}`` is one of the values the query ``{1}`` selects (an index seek)
    unkeyed: str  # the rows whose device-key columns are indexed (``_device_key``)
    lean: str | None = None  # the value of a lean field named ``{}``, read from the record

    def value(self, name: str) -> str:
        """The SQL expression of field ``name``'s value: its column, or for a lean field on a
        backend that leaves those empty, the value read from the record; a device key's
        column where the row holds it, else the record's."""
        field = BY_NAME[name]
        assert field.column is not None
        if self.lean is None or not (field.lean or field.device_key):
            return field.column
        if field.device_key:
            return f"COALESCE({field.column}, {self.lean.format(name)})"
        return self.lean.format(name)

    def any_of(self, column: str, values: Sequence[object]) -> tuple[str, list[object]]:
        if len(values) == 1:
            return f"{column} = {self.mark}", [values[0]]
        if self.arrays:
            return f"{column} = ANY({self.mark})", [list(values)]
        return f"{column} IN ({', '.join([self.mark] * len(values))})", list(values)

    def contains(self, column: str, needles: Sequence[str]) -> tuple[str, list[object]]:
        """``column`` contains one of ``needles``, ignoring ASCII case; wildcards literal."""
        like = f"{self.lower.format(column)} LIKE {self.mark} ESCAPE '\\'"
        sql = " OR ".join([like] * len(needles))
        return f"({sql})", [f"%{_escape_like(ascii_lower(needle))}%" for needle in needles]


SQLITE = Dialect(  # SQLite's LIKE ignores ASCII case itself
    "?",
    arrays=False,
    lower="{}",
    in_query="{0} IN ({1})",
    # A device key's column is filled only where device_keys may not know the row: events
    # naming no endpoint, and rows written before 0025 until `herald db migrate` empties it.
    unkeyed="{}",
    lean="record_field(dictionary_id, body, '{}')",
)
"""``record_field`` is the SQL function ``store.records.RecordMethods._record_field`` gives."""
POSTGRES = Dialect(
    "%s",
    arrays=True,
    lower="translate({}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')",
    in_query="{0} = ANY(ARRAY({1}))",  # evaluated once, then an index seek per value
    # Every row keeps its columns; their indexes hold the events naming no endpoint.
    unkeyed="endpoint_id IS NULL AND {}",
)


@dataclass(frozen=True, slots=True)
class Where:
    sql: str
    params: list[object]


def where_clause(flt: EventFilter, dialect: Dialect) -> Where:
    """``WHERE ...`` (or empty) selecting what ``flt`` selects; ``EventFilter.matches`` is the
    same selection in Python."""
    mark = dialect.mark
    parts: list[str] = []
    params: list[object] = []
    if flt.organisation_ids is not None:
        if not flt.organisation_ids:  # scoped to no organisation: nothing
            parts.append("1 = 0")
        else:
            sql, bound = dialect.any_of("organisation_id", flt.organisation_ids)
            parts.append(sql)
            params.extend(bound)
    for name, values in flt.terms:
        field = BY_NAME[name]
        if field.match is Match.CONTAINS:
            sql, bound = dialect.contains(dialect.value(name), [str(v) for v in values])
        elif field.device_key:
            sql, bound = _device_key(field, values, flt.organisation_ids, dialect)
        else:
            sql, bound = dialect.any_of(dialect.value(name), values)
        parts.append(sql)
        params.extend(bound)
    if flt.from_ms is not None:
        parts.append(f"ts >= {mark}")
        params.append(flt.from_ms)
    if flt.until_ms is not None:
        parts.append(f"ts <= {mark}")
        params.append(flt.until_ms)
    sql = (" WHERE " + " AND ".join(parts)) if parts else ""
    return Where(sql, params)


def _device_key(
    field: Field, values: Sequence[object], organisation_ids: tuple[int, ...] | None, d: Dialect
) -> tuple[str, list[object]]:
    """A device key equal to one of ``values``, by two paths: the rows that hold the key in
    its own (indexed) column, and the events of the endpoints ``device_keys`` names for it,
    each checked against its record."""
    assert field.column is not None
    own, own_params = d.any_of(field.column, values)
    scope, scope_params = "", list[object]()
    if organisation_ids:
        scope, scope_params = d.any_of("organisation_id", organisation_ids)
        scope += " AND "
    keys, key_params = d.any_of("value", [str(value) for value in values])
    endpoints = f"SELECT endpoint_id FROM device_keys WHERE {scope}field = {d.mark} AND {keys}"
    check, check_params = d.any_of(d.value(field.name), values)
    sql = (
        f"({d.unkeyed.format(own)} OR ({d.in_query.format('endpoint_id', endpoints)} AND {check}))"
    )
    return sql, [*own_params, *scope_params, field.name, *key_params, *check_params]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def is_keyset_sort(sort: Sequence[SortKey]) -> bool:
    """Cursor paging works for a sort by time (and id) in one direction."""
    fields = [key.field for key in sort]
    directions = {key.descending for key in sort}
    return fields in (["timestamp"], ["timestamp", "id"], ["id"]) and len(directions) == 1


def order_by(sort: Sequence[SortKey], dialect: Dialect) -> str:
    """``ORDER BY``: the asked fields, then id as the tie-breaker."""
    terms = [f"{dialect.value(key.field)} {'DESC' if key.descending else 'ASC'}" for key in sort]
    if not any(key.field == "id" for key in sort):
        terms.append(f"id {'DESC' if sort and sort[0].descending else 'ASC'}")
    return " ORDER BY " + ", ".join(terms)


def keyset_condition(query: EventQuery, mark: str) -> tuple[str, list[object]]:
    """The condition that continues after ``query.cursor`` (empty without one)."""
    if query.cursor is None:
        return "", []
    ts, event_id = decode_cursor(query.cursor)
    descending = query.sort[0].descending
    op = "<" if descending else ">"
    if [key.field for key in query.sort] == ["id"]:
        return f"id {op} {mark}", [event_id]
    # A row value, not (ts < ? OR (ts = ? AND id < ?)): both backends seek the (…, ts, id)
    # index with it, where the OR form scans every newer entry (deep pages grew linearly).
    return f"(ts, id) {op} ({mark}, {mark})", [ts, event_id]


def encode_cursor(ts: int, event_id: int) -> str:
    return base64.urlsafe_b64encode(f"{ts}:{event_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts, event_id = raw.split(":")
        return int(ts), int(event_id)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidQuery("cursor is not one this API issued") from exc


def stats_sql(query: StatsQuery, dialect: Dialect) -> tuple[str, list[object]]:
    """One aggregate over the filtered events: counts and volume per time bucket and group.

    Columns: bucket start (ms, or NULL), group key (or NULL), a label, count, volume (MB).
    """
    mark = dialect.mark
    where = where_clause(query.filter, dialect)
    bucket = "NULL"
    params: list[object] = []
    if query.bucket_ms is not None:
        bucket = f"(ts / {mark}) * {mark}"  # integer division on both backends
        params.extend([query.bucket_ms, query.bucket_ms])
    key, label = ("NULL", "NULL")
    if query.group is not None:
        key = STATS_GROUPS[query.group]
        label = "MAX(endpoint_name)" if query.group == "endpoint" else "NULL"
    sql = (
        f"SELECT {bucket} AS bucket, {key} AS grp, {label}, COUNT(*), "
        f"COALESCE(SUM(volume_mb), 0) FROM events{where.sql}"
    )
    params.extend(where.params)
    present = [f"{key} IS NOT NULL"] if query.group in ("country", "operator", "endpoint") else []
    if query.order == "volume":
        present.append("volume_mb IS NOT NULL")
    if present:
        sql += (" AND " if where.sql else " WHERE ") + " AND ".join(present)
    if query.bucket_ms is not None or query.group is not None:
        sql += " GROUP BY bucket, grp"
    measure = "COALESCE(SUM(volume_mb), 0)" if query.order == "volume" else "COUNT(*)"
    if query.bucket_ms is not None:
        sql += f" ORDER BY bucket, {measure} DESC, grp"
    else:
        sql += f" ORDER BY {measure} DESC, grp"
    sql += f" LIMIT {mark}"
    params.append(query.limit)
    return sql, params
