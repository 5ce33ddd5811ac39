"""Hourly event counts kept beside the log, so that counts over days read hours, not events.

``event_counts`` holds, per organisation, hour and (type, severity, source, alert,
criticality), how many events there are, how many of them carry a data volume, and that
volume in MB. ``append`` adds to it in the transaction that stores the events and ``purge``
takes away what it deletes, so it is always exact. ``stats`` answers from it for whole hours
and reads only the partial hours at the edges of the range from the events table; a query
the counts cannot answer (an endpoint filter, a country group, minute buckets...) reads the
events as before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from herald.events.types import StatsQuery, StatsRow
from herald.query.fields import BY_NAME, ROLLED_UP
from herald.store.sql import EVENT_COLUMNS, Dialect, where_clause

HOUR_MS = 3_600_000
_KEPT = ("organisation", "type", "severity", "source", "alert", "criticality")
assert set(_KEPT) == ROLLED_UP, "the counts' key columns are a migration: change both"
KEY_COLUMNS = ("organisation_id", "hour_ms", *(BY_NAME[name].column or "" for name in _KEPT[1:]))
UPSERT = (
    f"INSERT INTO event_counts ({', '.join(KEY_COLUMNS)}, events, volume_events, volume_mb) "
    f"VALUES ({', '.join('?' * (len(KEY_COLUMNS) + 3))}) "
    f"ON CONFLICT ({', '.join(KEY_COLUMNS)}) DO UPDATE SET "
    "events = event_counts.events + excluded.events, "
    "volume_events = event_counts.volume_events + excluded.volume_events, "
    "volume_mb = event_counts.volume_mb + excluded.volume_mb"
)
DROP_EMPTY = "DELETE FROM event_counts WHERE events <= 0"
# The columns of the events table a count is made of.
COUNTED = ("organisation_id", "ts", *KEY_COLUMNS[2:], "volume_mb")
_GROUPS: dict[str | None, str | None] = {
    None: "NULL",
    **{name: BY_NAME[name].column for name in ROLLED_UP if BY_NAME[name].groupable},
}
_NO_LIMIT = 1_000_000

Delta = tuple[Any, ...]  # KEY_COLUMNS values, events, volume_events, volume_mb


def deltas(
    rows: Iterable[Sequence[Any]], sign: int = 1, columns: Sequence[str] = EVENT_COLUMNS
) -> list[Delta]:
    """What event rows add to the counts (``sign=-1``: take away); ``columns`` name the
    rows' values (``sql.event_row``'s by default, or ``COUNTED``).

    Sorted by key, so that concurrent writers lock the same rows in the same order.
    """
    at = [columns.index(name) for name in COUNTED]
    sums: dict[tuple[Any, ...], list[Any]] = {}
    for row in rows:
        organisation_id, ts, *rest, volume = (row[i] for i in at)
        key = (organisation_id, ts - ts % HOUR_MS, *rest)
        cell = sums.setdefault(key, [0, 0, 0.0])
        cell[0] += sign
        if isinstance(volume, float):
            cell[1] += sign
            cell[2] += sign * volume
    return [(*key, *cell) for key, cell in sorted(sums.items())]


def answerable(query: StatsQuery) -> bool:
    """Whether the counts hold what ``query`` asks (its filters, group and bucket)."""
    flt = query.filter
    return (
        flt.fields() <= ROLLED_UP | {"timestamp"}
        and flt.from_ms is not None
        and flt.until_ms is not None
        and query.group in _GROUPS
        and (query.bucket_ms is None or query.bucket_ms % HOUR_MS == 0)
    )


def stats(
    query: StatsQuery,
    from_events: Callable[[StatsQuery], list[StatsRow]],
    from_counts: Callable[[str, list[object]], list[Sequence[Any]]],
    dialect: Dialect,
) -> list[StatsRow]:
    """``query`` answered from whole hours of counts plus the partial hours of events.

    ``from_events`` runs a StatsQuery on the events table, ``from_counts`` one SQL statement
    (in ``dialect``) on the counts.
    """
    flt = query.filter
    if not answerable(query):
        return from_events(query)
    assert flt.from_ms is not None and flt.until_ms is not None
    first_hour = -(-flt.from_ms // HOUR_MS) * HOUR_MS  # the first whole hour in the range
    end_hour = (flt.until_ms + 1) // HOUR_MS * HOUR_MS  # the end of the last whole hour
    if first_hour >= end_hour:
        return from_events(query)
    cells: dict[tuple[Any, Any], list[Any]] = {}
    for start, until in ((flt.from_ms, first_hour - 1), (end_hour, flt.until_ms)):
        if start <= until:
            edge = flt.replace(from_ms=start, until_ms=until)
            rows = from_events(dataclasses.replace(query, filter=edge, limit=_NO_LIMIT))
            _add(cells, ((r.bucket_ms, r.key, r.count, r.volume_mb) for r in rows))
    sql, params = _counts_sql(query, first_hour, end_hour, dialect)
    _add(cells, ((r[0], r[1], int(r[2]), float(r[3])) for r in from_counts(sql, params)))
    return _ranked(query, cells)


def _counts_sql(
    query: StatsQuery, start: int, end: int, dialect: Dialect
) -> tuple[str, list[object]]:
    mark = dialect.mark
    counted = "volume_events" if query.order == "volume" else "events"
    bucket, params = "NULL", list[object]()
    if query.bucket_ms is not None:
        bucket = f"(hour_ms / {mark}) * {mark}"
        params += [query.bucket_ms, query.bucket_ms]
    where = where_clause(query.filter.replace(from_ms=None, until_ms=None), dialect)
    hours = f"hour_ms >= {mark} AND hour_ms < {mark}"
    sql = (
        f"SELECT {bucket} AS bucket, {_GROUPS[query.group]} AS grp, SUM({counted}), "
        f"SUM(volume_mb) FROM event_counts{where.sql}"
        f"{' AND ' if where.sql else ' WHERE '}{hours} GROUP BY bucket, grp"
    )
    return sql, [*params, *where.params, start, end]


def _add(cells: dict[tuple[Any, Any], list[Any]], rows: Iterable[tuple[Any, ...]]) -> None:
    for bucket, key, count, volume in rows:
        cell = cells.setdefault((bucket, key), [0, 0.0])
        cell[0] += count
        cell[1] += volume


def _ranked(query: StatsQuery, cells: dict[tuple[Any, Any], list[Any]]) -> list[StatsRow]:
    """The cells as the events query orders and limits them."""
    rows = [
        StatsRow(bucket, key, None, count, volume)
        for (bucket, key), (count, volume) in cells.items()
        if count > 0
    ]
    if query.bucket_ms is None and query.group is None:  # one total, even of nothing
        return rows or [StatsRow(None, None, None, 0, 0.0)]

    def measure(row: StatsRow) -> float:
        return row.volume_mb if query.order == "volume" else row.count

    rows.sort(key=lambda row: (row.bucket_ms or 0, -measure(row), row.key or 0))
    return rows[: query.limit]
