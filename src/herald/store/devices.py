"""The device-state projection: each endpoint's connectivity state, ``store.devices``.

``device_states`` holds one row per (organisation, endpoint); ``device_projection`` the
position in the log the rows include, the lease of the one process that keeps them (its
``owner``, until ``owner_until_ms``) and the time the written states are as of. The owner
(``herald.devices.projector``) moves the position and writes the rows it changed in one
transaction, and only if the position is still where it wrote it last and the lease its
own (compare and set), so two processes projecting the same log never move it past what
either has written.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, cast

from herald.store.dbapi import C
from herald.store.device_records import DEVICE_SORTS, DeviceQuery, DeviceRow, Freshness
from herald.timefmt import now_ms

if TYPE_CHECKING:
    from herald.store.common import SQLStoreBase

PROJECTION = "device_state"
_NOT_NULL = frozenset({"status", "last_event_ms", "updated_ms"})
_FIELDS = tuple(field.name for field in dataclasses.fields(DeviceRow))
_COLUMNS = ", ".join(_FIELDS)  # the columns are named as DeviceRow's fields, in its order
_UPDATED = ", ".join(f"{name} = excluded.{name}" for name in _FIELDS[2:])
_UPSERT = (
    f"INSERT INTO device_states ({_COLUMNS}) VALUES ({', '.join('?' * len(_FIELDS))}) "
    f"ON CONFLICT (organisation_id, endpoint_key) DO UPDATE SET {_UPDATED}"
)
_values = operator.attrgetter(*_FIELDS)  # a row's values, in ``_COLUMNS``' order


def _row(row: Sequence[Any]) -> DeviceRow:
    """A row read as ``SELECT {_COLUMNS}``."""
    return DeviceRow(*row)


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
        row = self._db.read(
            lambda c: self._db.execute(
                c, "SELECT cursor_seq FROM device_projection WHERE name = ?", (PROJECTION,)
            ).fetchone()
        )
        return int(row[0]) if row else 0

    def position(self) -> tuple[int, int]:
        """The log position the device states include and the one the last reset started
        from (``quiet_until_seq``)."""
        row = self._db.read(
            lambda c: self._db.execute(
                c,
                "SELECT cursor_seq, quiet_until_seq FROM device_projection WHERE name = ?",
                (PROJECTION,),
            ).fetchone()
        )
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def freshness(self) -> Freshness:
        """What the written states include: the log position and the time they are as of."""
        return self._db.read(self._freshness)

    def _freshness(self, conn: C) -> Freshness:
        row = self._db.execute(
            conn, "SELECT cursor_seq, as_of_ms FROM device_projection WHERE name = ?", (PROJECTION,)
        ).fetchone()
        return Freshness(int(row[0]), int(row[1])) if row else Freshness(0, 0)

    def claim(self, owner: str, lease_ms: int) -> tuple[int, int] | None:
        """Take (or renew) the lease on the states for ``lease_ms`` if it is free, run out or
        ``owner``'s: the position (``position()``) if held, None if another owner holds it."""
        now = now_ms()

        def claim(conn: C) -> tuple[int, int] | None:
            taken = self._db.execute(
                conn,
                "UPDATE device_projection SET owner = ?, owner_until_ms = ? WHERE name = ? "
                "AND (owner = ? OR owner IS NULL OR owner_until_ms < ?)",
                (owner, now + lease_ms, PROJECTION, owner, now),
            ).rowcount
            if taken != 1:
                return None
            row = self._db.execute(
                conn,
                "SELECT cursor_seq, quiet_until_seq FROM device_projection WHERE name = ?",
                (PROJECTION,),
            ).fetchone()
            return int(row[0]), int(row[1])

        with self._db.transaction(durable=False) as conn:
            return claim(conn)

    def owner(self) -> str | None:
        """Who holds the lease on the states now (None: nobody)."""
        row = self._db.read(
            lambda c: self._db.execute(
                c,
                "SELECT owner, owner_until_ms FROM device_projection WHERE name = ?",
                (PROJECTION,),
            ).fetchone()
        )
        return str(row[0]) if row and row[0] is not None and int(row[1]) >= now_ms() else None

    def release(self, owner: str) -> None:
        """Give the lease up (a stopping owner), if ``owner`` holds it."""
        self._db.write(
            lambda c: self._db.execute(
                c,
                "UPDATE device_projection SET owner = NULL, owner_until_ms = 0 "
                "WHERE name = ? AND owner = ?",
                (PROJECTION, owner),
            )
        )

    def log_positions(self, after_seq: int, limit: int) -> list[tuple[int, int]]:
        """The (position, event id) of at most ``limit`` events after ``after_seq``, in log
        order, up to the log's readable end (as ``store.log.read``): what the owner folded
        from its own appends needs no more of the log than this."""
        db = self._db
        sql = (
            f"SELECT seq, id FROM events WHERE seq > ? AND seq <= ({db.LAST_SEQ}) "
            "ORDER BY seq LIMIT ?"
        )
        rows = db.read(lambda c: db.execute(c, sql, (after_seq, limit)).fetchall())
        return [(int(seq), int(event_id)) for seq, event_id in rows]

    def states(self, keys: Sequence[tuple[int, str]]) -> dict[tuple[int, str], DeviceRow]:
        """The stored states of these (organisation, endpoint key) pairs that have one."""
        by_organisation: dict[int, list[str]] = {}
        for organisation_id, key in keys:
            by_organisation.setdefault(organisation_id, []).append(key)

        def read(conn: C) -> list[Any]:
            rows: list[Any] = []
            for organisation_id, wanted in by_organisation.items():
                rows += self._db.execute(
                    conn,
                    f"SELECT {_COLUMNS} FROM device_states WHERE organisation_id = ? "
                    f"AND endpoint_key IN ({_marks(wanted)})",
                    [organisation_id, *wanted],
                ).fetchall()
            return rows

        found = [_row(row) for row in self._db.read(read)] if by_organisation else []
        return {(row.organisation_id, row.endpoint_key): row for row in found}

    def save(self, after_seq: int, cursor_seq: int, rows: Sequence[DeviceRow]) -> bool:
        """In one transaction: ``saving``'s rows; False (nothing written) if the cursor is no
        longer at ``after_seq``."""
        with self._db.transaction() as conn:
            return self.saving(after_seq, cursor_seq, rows)(conn) is not None

    def saving(
        self,
        after_seq: int,
        cursor_seq: int,
        rows: Sequence[DeviceRow],
        lease: tuple[str, int, int] | None = None,
    ) -> Callable[[C], bool | None]:
        """A step of the projection, as work for a transaction (``save``'s, or the writer's
        that appends the status-change events with it): move the cursor from ``after_seq``
        to ``cursor_seq`` and write ``rows``. With a ``lease`` (owner, lease in ms, as of
        ms), only while ``owner`` holds it, renewed, with the time the states are as of.
        None (nothing written) if the cursor is no longer at ``after_seq`` or the lease not
        the owner's."""
        db = self._db
        sql = "UPDATE device_projection SET cursor_seq = ? WHERE name = ? AND cursor_seq = ?"
        params: tuple[object, ...] = (cursor_seq, PROJECTION, after_seq)
        if lease is not None:
            owner, lease_ms, as_of_ms = lease
            sql = (
                "UPDATE device_projection SET cursor_seq = ?, owner_until_ms = ?, "
                f"as_of_ms = {db.GREATEST}(as_of_ms, ?) "
                "WHERE name = ? AND cursor_seq = ? AND owner = ?"
            )
            params = (cursor_seq, now_ms() + lease_ms, as_of_ms, PROJECTION, after_seq, owner)

        def save(conn: C) -> bool | None:
            moved = db.execute(conn, sql, params).rowcount
            if moved != 1:
                return None
            if rows:  # both drivers' cursors batch this (psycopg in one pipeline)
                cast(Any, conn).cursor().executemany(db.sql(_UPSERT), [_values(r) for r in rows])
            return True

        return save

    def event_settings(self) -> tuple[int, dict[int, str]]:
        """The position up to which no status change is emitted, and the organisations
        that asked for them (id -> name)."""

        def read(conn: C) -> tuple[int, dict[int, str]]:
            quiet = self._db.execute(
                conn, "SELECT quiet_until_seq FROM device_projection WHERE name = ?", (PROJECTION,)
            ).fetchone()
            wanted = self._db.execute(
                conn, "SELECT id, name FROM organisations WHERE device_events ORDER BY id"
            ).fetchall()
            return (int(quiet[0]) if quiet else 0), {int(r[0]): str(r[1]) for r in wanted}

        return self._db.read(read)

    def reset(self) -> None:
        """Forget every state and start the projection again from the start of the log;
        the status changes up to the log's end now were emitted before: not again."""
        with self._db.transaction() as conn:
            self._db.execute(conn, "DELETE FROM device_states")
            self._db.execute(
                conn,
                "UPDATE device_projection SET cursor_seq = 0, as_of_ms = 0, quiet_until_seq = "
                "(SELECT COALESCE(MAX(seq), 0) FROM events) WHERE name = ?",
                (PROJECTION,),
            )

    def get(self, organisation_ids: tuple[int, ...] | None, endpoint_key: str) -> DeviceRow | None:
        """One endpoint's state in the caller's organisations (None: none, or several
        organisations hold the key: the internal caller gets the lowest organisation's)."""
        return self.lookup(organisation_ids, endpoint_key)[0]

    def lookup(
        self, organisation_ids: tuple[int, ...] | None, endpoint_key: str
    ) -> tuple[DeviceRow | None, Freshness]:
        """``get``, and what the written states include (one read)."""
        where, params = self._scope(organisation_ids)
        sql = (
            f"SELECT {_COLUMNS} FROM device_states WHERE endpoint_key = ?{where} "
            "ORDER BY organisation_id LIMIT 1"
        )

        def read(conn: C) -> tuple[DeviceRow | None, Freshness]:
            row = self._db.execute(conn, sql, [endpoint_key, *params]).fetchone()
            return (_row(row) if row is not None else None), self._freshness(conn)

        return self._db.read(read)

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
            like = dataclasses.replace(self._db.DIALECT, mark="?")
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
            total = self._db.execute(
                conn, f"SELECT COUNT(*) FROM device_states WHERE TRUE{where}", params
            ).fetchone()
            rows = self._db.execute(
                conn,
                f"SELECT {_COLUMNS} FROM device_states WHERE TRUE{where} ORDER BY {order} "
                "LIMIT ? OFFSET ?",
                [*params, query.per_page, (query.page - 1) * query.per_page],
            ).fetchall()
            return [_row(row) for row in rows], int(total[0])

        return self._db.read(read, query.time_limit)

    def status_counts(self, organisation_ids: tuple[int, ...] | None) -> dict[int, int]:
        """How many endpoints of the caller's organisations are in each status."""
        where, params = self._scope(organisation_ids)
        sql = f"SELECT status, COUNT(*) FROM device_states WHERE TRUE{where} GROUP BY status"
        rows = self._db.read(lambda c: self._db.execute(c, sql, params).fetchall())
        return {int(status): int(count) for status, count in rows}

    def _scope(self, organisation_ids: tuple[int, ...] | None) -> tuple[str, list[object]]:
        if organisation_ids is None:
            return "", []
        condition, params = self._db.any("organisation_id", organisation_ids)
        return f" AND {condition}", params
