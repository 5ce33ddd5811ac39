"""The device-state projection: each endpoint's connectivity state, ``store.devices``.

``device_states`` holds one row per (organisation, endpoint); ``device_projection`` the
position in the log the rows include. The projector (``herald.devices.projector``) moves
the position and writes the rows it changed in one transaction, and only if the position is
still where it read from (compare and set), so two processes projecting the same log never
move it past what either has written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, cast

from herald.store.dbapi import C
from herald.store.device_records import DEVICE_SORTS, DeviceQuery, DeviceRow

if TYPE_CHECKING:
    from herald.store.common import SQLStoreBase

PROJECTION = "device_state"
_NOT_NULL = frozenset({"status", "last_event_ms", "updated_ms"})
_COLUMNS = (
    "organisation_id, endpoint_key, endpoint_id, endpoint_name, status, country, operator, "
    "last_event_ms, updated_ms, state"
)
_UPSERT = (
    f"INSERT INTO device_states ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (organisation_id, endpoint_key) DO UPDATE SET "
    "endpoint_id = excluded.endpoint_id, endpoint_name = excluded.endpoint_name, "
    "status = excluded.status, country = excluded.country, operator = excluded.operator, "
    "last_event_ms = excluded.last_event_ms, updated_ms = excluded.updated_ms, "
    "state = excluded.state"
)


def _row(row: Sequence[Any]) -> DeviceRow:
    return DeviceRow(
        organisation_id=int(row[0]),
        endpoint_key=str(row[1]),
        endpoint_id=None if row[2] is None else int(row[2]),
        endpoint_name=row[3],
        status=int(row[4]),
        country=row[5],
        operator=row[6],
        last_event_ms=int(row[7]),
        updated_ms=int(row[8]),
        state=str(row[9]),
    )


def _values(row: DeviceRow) -> tuple[object, ...]:
    return (
        row.organisation_id,
        row.endpoint_key,
        row.endpoint_id,
        row.endpoint_name,
        row.status,
        row.country,
        row.operator,
        row.last_event_ms,
        row.updated_ms,
        row.state,
    )


def _order(name: str, descending: bool) -> str:
    """One sort key; a column that may be NULL sorts those last on both backends."""
    column = DEVICE_SORTS[name]
    direction = " DESC" if descending else ""
    if column in _NOT_NULL:
        return f"{column}{direction}"
    return f"({column} IS NULL), {column}{direction}"


def _marks(values: Sequence[object]) -> str:
    return ", ".join("?" * len(values)) or "NULL"


class Devices(Generic[C]):
    """Each endpoint's state, projected from the log, and the projection's position."""

    def __init__(self, db: SQLStoreBase[C]) -> None:
        self._db = db

    def cursor(self) -> int:
        """The log position the device states include."""
        row = self._db._read(
            lambda c: self._db._execute(
                c, "SELECT cursor_seq FROM device_projection WHERE name = ?", (PROJECTION,)
            ).fetchone()
        )
        return int(row[0]) if row else 0

    def position(self) -> tuple[int, int]:
        """The log position the device states include and the one the last reset started
        from (``quiet_until_seq``)."""
        row = self._db._read(
            lambda c: self._db._execute(
                c,
                "SELECT cursor_seq, quiet_until_seq FROM device_projection WHERE name = ?",
                (PROJECTION,),
            ).fetchone()
        )
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def states(self, keys: Sequence[tuple[int, str]]) -> dict[tuple[int, str], DeviceRow]:
        """The stored states of these (organisation, endpoint key) pairs that have one."""
        by_organisation: dict[int, list[str]] = {}
        for organisation_id, key in keys:
            by_organisation.setdefault(organisation_id, []).append(key)

        def read(conn: C) -> list[Any]:
            rows: list[Any] = []
            for organisation_id, wanted in by_organisation.items():
                rows += self._db._execute(
                    conn,
                    f"SELECT {_COLUMNS} FROM device_states WHERE organisation_id = ? "
                    f"AND endpoint_key IN ({_marks(wanted)})",
                    [organisation_id, *wanted],
                ).fetchall()
            return rows

        found = [_row(row) for row in self._db._read(read)] if by_organisation else []
        return {(row.organisation_id, row.endpoint_key): row for row in found}

    def save(self, after_seq: int, cursor_seq: int, rows: Sequence[DeviceRow]) -> bool:
        """In one transaction: ``saving``'s rows; False (nothing written) if the cursor is no
        longer at ``after_seq``."""
        with self._db._transaction() as conn:
            return self.saving(after_seq, cursor_seq, rows)(conn) is not None

    def saving(
        self, after_seq: int, cursor_seq: int, rows: Sequence[DeviceRow]
    ) -> Callable[[C], bool | None]:
        """A step of the projection, as work for a transaction (``save``'s, or the writer's
        that appends the status-change events with it): move the cursor from ``after_seq``
        to ``cursor_seq`` and write ``rows``. None (nothing written) if the cursor is no
        longer at ``after_seq``."""
        db = self._db

        def save(conn: C) -> bool | None:
            moved = db._execute(
                conn,
                "UPDATE device_projection SET cursor_seq = ? WHERE name = ? AND cursor_seq = ?",
                (cursor_seq, PROJECTION, after_seq),
            ).rowcount
            if moved != 1:
                return None
            if rows:  # both drivers' cursors batch this (psycopg in one pipeline)
                cast(Any, conn).cursor().executemany(db._sql(_UPSERT), [_values(r) for r in rows])
            return True

        return save

    def event_settings(self) -> tuple[int, dict[int, str]]:
        """The position up to which no status change is emitted, and the organisations
        that asked for them (id -> name)."""

        def read(conn: C) -> tuple[int, dict[int, str]]:
            quiet = self._db._execute(
                conn, "SELECT quiet_until_seq FROM device_projection WHERE name = ?", (PROJECTION,)
            ).fetchone()
            wanted = self._db._execute(
                conn, "SELECT id, name FROM organisations WHERE device_events ORDER BY id"
            ).fetchall()
            return (int(quiet[0]) if quiet else 0), {int(r[0]): str(r[1]) for r in wanted}

        return self._db._read(read)

    def reset(self) -> None:
        """Forget every state and start the projection again from the start of the log;
        the status changes up to the log's end now were emitted before: not again."""
        with self._db._transaction() as conn:
            self._db._execute(conn, "DELETE FROM device_states")
            self._db._execute(
                conn,
                "UPDATE device_projection SET cursor_seq = 0, quiet_until_seq = "
                "(SELECT COALESCE(MAX(seq), 0) FROM events) WHERE name = ?",
                (PROJECTION,),
            )

    def get(self, organisation_ids: tuple[int, ...] | None, endpoint_key: str) -> DeviceRow | None:
        """One endpoint's state in the caller's organisations (None: none, or several
        organisations hold the key: the internal caller gets the lowest organisation's)."""
        where, params = self._scope(organisation_ids)
        sql = (
            f"SELECT {_COLUMNS} FROM device_states WHERE endpoint_key = ?{where} "
            "ORDER BY organisation_id LIMIT 1"
        )
        row = self._db._read(
            lambda c: self._db._execute(c, sql, [endpoint_key, *params]).fetchone()
        )
        return _row(row) if row is not None else None

    def page(self, query: DeviceQuery) -> tuple[list[DeviceRow], int]:
        """A page of endpoint states and how many match in all."""
        where, params = self._scope(query.organisation_ids)
        conditions: list[str] = []
        for column, wanted in (
            ("status", query.statuses),
            ("country", query.countries),
            ("operator", query.operators),
        ):
            if wanted:
                conditions.append(f"{column} IN ({_marks(wanted)})")
                params.extend(wanted)
        if query.endpoints:
            marks = _marks(query.endpoints)
            conditions.append(f"(endpoint_key IN ({marks}) OR endpoint_name IN ({marks}))")
            params.extend([*query.endpoints, *query.endpoints])
        if query.name_contains:
            like = dataclasses.replace(self._db._DIALECT, mark="?")
            condition, bound = like.contains("endpoint_name", query.name_contains)
            conditions.append(condition)
            params.extend(bound)
        if query.seen_after_ms is not None:
            conditions.append("last_event_ms >= ?")
            params.append(query.seen_after_ms)
        if query.seen_before_ms is not None:
            conditions.append("last_event_ms < ?")
            params.append(query.seen_before_ms)
        where += "".join(f" AND {condition}" for condition in conditions)
        order = ", ".join(_order(name, desc) for name, desc in query.sort)
        last = " DESC" if query.sort[-1][1] else ""  # a stable order for paging, index-friendly
        order += f", organisation_id{last}, endpoint_key{last}"

        def read(conn: C) -> tuple[list[DeviceRow], int]:
            total = self._db._execute(
                conn, f"SELECT COUNT(*) FROM device_states WHERE TRUE{where}", params
            ).fetchone()
            rows = self._db._execute(
                conn,
                f"SELECT {_COLUMNS} FROM device_states WHERE TRUE{where} ORDER BY {order} "
                "LIMIT ? OFFSET ?",
                [*params, query.per_page, (query.page - 1) * query.per_page],
            ).fetchall()
            return [_row(row) for row in rows], int(total[0])

        return self._db._read(read, query.time_limit)

    def status_counts(self, organisation_ids: tuple[int, ...] | None) -> dict[int, int]:
        """How many endpoints of the caller's organisations are in each status."""
        where, params = self._scope(organisation_ids)
        sql = f"SELECT status, COUNT(*) FROM device_states WHERE TRUE{where} GROUP BY status"
        rows = self._db._read(lambda c: self._db._execute(c, sql, params).fetchall())
        return {int(status): int(count) for status, count in rows}

    def _scope(self, organisation_ids: tuple[int, ...] | None) -> tuple[str, list[object]]:
        if organisation_ids is None:
            return "", []
        condition, params = self._db._any("organisation_id", organisation_ids)
        return f" AND {condition}", params
