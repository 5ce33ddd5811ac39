"""SQL for event queries, shared by the backends (they differ only in the placeholder)."""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Sequence
from dataclasses import dataclass

from herald.model import NewEvent
from herald.store.base import (
    SORT_COLUMNS,
    STATS_GROUPS,
    EventFilter,
    EventQuery,
    SortKey,
    StatsQuery,
)
from herald.store.errors import InvalidQuery

EVENT_COLUMNS = (
    "id",
    "organisation_id",
    "ts",
    "received",
    "type_id",
    "severity",
    "source",
    "alert",
    "criticality",
    "endpoint_id",
    "endpoint_name",
    "sim_id",
    "iccid",
    "imsi",
    "imei",
    "ip_address",
    "user_id",
    "username",
    "tags",
    "target_type",
    "target_id",
    "moniker",
    "provider",
    "external_id",
    "description",
    "body",
    "country",
    "operator",
    "volume_mb",
)

_IN_FILTERS = (
    ("organisation_id", "organisation_ids"),
    ("type_id", "type_ids"),
    ("severity", "severities"),
    ("source", "sources"),
    ("criticality", "criticalities"),
    ("endpoint_id", "endpoint_ids"),
    ("endpoint_name", "endpoint_names"),
    ("sim_id", "sim_ids"),
    ("user_id", "user_ids"),
    ("username", "usernames"),
    ("iccid", "iccids"),
    ("imsi", "imsis"),
    ("imei", "imeis"),
    ("ip_address", "ip_addresses"),
    ("target_type", "target_types"),
    ("target_id", "target_ids"),
    ("moniker", "monikers"),
    ("provider", "providers"),
)


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def event_row(event: NewEvent, event_id: int, body: bytes) -> tuple[object, ...]:
    """The column values of one event, in ``EVENT_COLUMNS`` order."""
    endpoint, sim, imsi, user = (event.nested(k) for k in ("endpoint", "sim", "imsi", "user"))
    target = event.nested("target")
    return (
        event_id,
        event.organisation_id,
        event.timestamp_ms,
        event.received_ms,
        event.type_id,
        event.severity,
        event.source,
        event.alert,
        event.criticality,
        _int_or_none(endpoint.get("id")),
        _str_or_none(endpoint.get("name")),
        _int_or_none(sim.get("id")),
        _str_or_none(sim.get("iccid")),
        _str_or_none(imsi.get("imsi")),
        _str_or_none(endpoint.get("imei")),
        _str_or_none(endpoint.get("ip_address")),
        _int_or_none(user.get("id")),
        _str_or_none(user.get("username")),
        _str_or_none(endpoint.get("tags")),
        _str_or_none(target.get("type")),
        _str_or_none(target.get("id")),
        event.record.get("moniker"),
        event.provider,
        event.external_id,
        event.record["description"],
        body,
        *network_columns(event.type_id, event.record.get("detail")),
    )


DELETE_PDP_CONTEXT = 5


def network_columns(type_id: int, detail: object) -> tuple[str | None, str | None, float | None]:
    """Country, operator and data volume (MB) from a record's detail, for the analytics.

    Update location and PDP context records carry ``detail.country.name`` and the operator
    as ``detail.name``; a Delete PDP Context reports ``detail.volume.total`` in MB.
    """
    if not isinstance(detail, dict):
        return None, None, None
    country = detail.get("country")
    name = country.get("name") if isinstance(country, dict) else None
    operator = detail.get("name")
    volume = detail.get("volume")
    total = volume.get("total") if isinstance(volume, dict) else None
    volume_mb = None
    if type_id == DELETE_PDP_CONTEXT and isinstance(total, int | float | str):
        if isinstance(total, bool):
            return _text(name), _text(operator), None
        try:
            volume_mb = float(total)
        except ValueError:
            volume_mb = None
        if volume_mb is not None and not math.isfinite(volume_mb):
            volume_mb = None
    return _text(name), _text(operator), volume_mb


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class Where:
    sql: str
    params: list[object]


def where_clause(flt: EventFilter, mark: str) -> Where:
    """``WHERE ...`` (or empty) selecting what ``flt`` asks for; ``mark`` is ``?`` or ``%s``."""
    parts: list[str] = []
    params: list[object] = []
    for column, attribute in _IN_FILTERS:
        values: Sequence[object] | None = getattr(flt, attribute)
        if values is None:
            continue
        if not values:
            if attribute == "organisation_ids":  # scoped to no organisation: nothing
                parts.append("1 = 0")
            continue
        if len(values) == 1:
            parts.append(f"{column} = {mark}")
        else:
            parts.append(f"{column} IN ({', '.join([mark] * len(values))})")
        params.extend(values)
    if flt.alert is not None:
        parts.append(f"alert = {mark}")
        params.append(flt.alert)
    if flt.from_ms is not None:
        parts.append(f"ts >= {mark}")
        params.append(flt.from_ms)
    if flt.until_ms is not None:
        parts.append(f"ts <= {mark}")
        params.append(flt.until_ms)
    if flt.tags:
        parts.append("(" + " OR ".join([f"tags LIKE {mark}"] * len(flt.tags)) + ")")
        params.extend(f"%{_escape_like(tag)}%" for tag in flt.tags)
    if flt.description:
        parts.append(f"description LIKE {mark} ESCAPE '\\'")
        params.append(f"%{_escape_like(flt.description)}%")
    sql = (" WHERE " + " AND ".join(parts)) if parts else ""
    return Where(sql, params)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def is_keyset_sort(sort: Sequence[SortKey]) -> bool:
    """Cursor paging works for a sort by time (and id) in one direction."""
    fields = [key.field for key in sort]
    directions = {key.descending for key in sort}
    return fields in (["timestamp"], ["timestamp", "id"], ["id"]) and len(directions) == 1


def order_by(sort: Sequence[SortKey]) -> str:
    """``ORDER BY``: the asked fields, then id as the tie-breaker."""
    terms = [f"{SORT_COLUMNS[key.field]} {'DESC' if key.descending else 'ASC'}" for key in sort]
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


def stats_sql(query: StatsQuery, mark: str) -> tuple[str, list[object]]:
    """One aggregate over the filtered events: counts and volume per time bucket and group.

    Columns: bucket start (ms, or NULL), group key (or NULL), a label, count, volume (MB).
    """
    where = where_clause(query.filter, mark)
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
