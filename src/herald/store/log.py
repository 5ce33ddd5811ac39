"""The event log: ``store.log``.

Appends and reads in commit order are the backends' own (SQLite: ``executemany`` on one
writer, the log position its rowid; PostgreSQL: binary COPY through a staging table, read up
to a safe watermark); queries, single reads, stats and the counts the delivery worker takes
are written once here, in the backend's dialect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

from herald.events.types import (
    LOG_SCAN_ROWS,
    EventPage,
    EventQuery,
    LogEntry,
    LogScan,
    StatsQuery,
    StatsRow,
)
from herald.query.filter import EventFilter
from herald.record import NewEvent
from herald.store import rollup
from herald.store.dbapi import C
from herald.store.sql import (
    Where,
    encode_cursor,
    is_keyset_sort,
    keyset_condition,
    order_by,
    stats_sql,
    where_clause,
)

if TYPE_CHECKING:
    from herald.store.common import SQLStoreBase

T = TypeVar("T")


class Horizon(NamedTuple):
    """Which write transactions a reader of the log may count on, at one instant: every one
    numbered below ``ended_below`` has ended, and every one that had committed was numbered
    below ``begun_below``. So once a later horizon's ``ended_below`` reaches this one's
    ``begun_below``, a read that reaches the end of the log holds every event committed
    before this instant. (SQLite: both 0, a commit is readable the moment it is made.)"""

    ended_below: int
    begun_below: int


class EventLog(Generic[C]):
    """The events, in the order readers see them (``seq``) and by their indexed fields."""

    def __init__(self, db: SQLStoreBase[C]) -> None:
        self._db = db

    # -- the log in commit order ----------------------------------------------
    def append(self, events: Sequence[NewEvent], ids: Sequence[int]) -> list[bytes]:
        """Store events in one transaction; return each stored record in order.

        An event whose (organisation, provider, external_id) is already stored is not
        stored again: the record already stored is returned in its place. The write path
        refuses events outside their organisation's retention window; PostgreSQL, which
        never creates a partition for a write, raises InvalidQuery for one that slips
        through. Raises StoreUnavailable while ``store.nodes.refusal()`` gives a reason.
        """
        return self._db.append(events, ids)

    def append_with(
        self,
        events: Sequence[NewEvent],
        ids: Sequence[int],
        joined: Callable[[C], T | None],
        *,
        standing: Callable[[Any], Sequence[bool]] | None = None,
        durable: bool = True,
    ) -> tuple[T | None, list[bytes | None]]:
        """In one transaction: ``joined`` (the rows that must commit with the events: a
        delivery's bookkeeping, a state change), then ``events``; ``joined``'s answer and
        each event's stored record. If ``joined`` answers None it wrote nothing, and the
        events are not appended either (no records). ``standing`` picks, from ``joined``'s
        answer, the events that are appended (the others' records are None)."""
        db = self._db
        if events:
            db.before_insert(events)
        with db.transaction(durable=durable) as conn:
            result = joined(conn)
            if result is None or not events:
                return result, []
            stand = [True] * len(events) if standing is None else list(standing(result))
            chosen = [i for i, kept in enumerate(stand) if kept]
            stored = db.insert_events(conn, [events[i] for i in chosen], [ids[i] for i in chosen])
        records: list[bytes | None] = [None] * len(events)
        for index, record in zip(chosen, stored, strict=True):
            records[index] = record
        return result, records

    def read(
        self, after_seq: int, limit: int, organisation_ids: tuple[int, ...] | None = None
    ) -> list[LogEntry]:
        """Events committed after ``after_seq``, in commit order."""
        return self._db.read_log(after_seq, limit, organisation_ids)

    def scan(
        self,
        after_seq: int,
        limit: int,
        organisation_ids: tuple[int, ...],
        upto_seq: int | None = None,
        scan_rows: int = LOG_SCAN_ROWS,
        flt: EventFilter | None = None,
    ) -> LogScan:
        """``organisation_ids``' events after ``after_seq`` (and at most ``upto_seq``) in commit
        order, at most ``limit`` of them, looking at no more than ``scan_rows`` rows of the
        log: a tenant's read costs the same however little of the log is its own. ``flt``
        (its terms; no scope or time range) selects in the query, over the indexed columns
        (on SQLite a lean field is read from the record by ``record_field``)."""
        matching = None
        if flt is not None and not flt.selects_all:
            where = where_clause(flt, self._db.DIALECT)
            matching = Where(where.sql.removeprefix(" WHERE "), where.params)
        return self._db.scan_log(after_seq, limit, organisation_ids, upto_seq, scan_rows, matching)

    def last_seq(self) -> int:
        """The last position a reader may read up to (``read(last_seq())``: what comes later)."""
        return self._db.last_seq()

    def horizon(self) -> Horizon:
        """Which write transactions have ended and which had begun, now (see ``Horizon``)."""
        db = self._db
        if db.HORIZON is None:
            return Horizon(0, 0)
        sql = db.HORIZON
        row = db.read(lambda c: c.execute(sql).fetchone())
        return Horizon(int(row[0]), int(row[1]))

    def activity(self, after_seq: int, upto_seq: int, limit: int) -> dict[int, set[int]] | None:
        """Which organisations' events, of which types, were committed in
        (``after_seq``, ``upto_seq``]; None if more than ``limit`` events were."""
        db = self._db
        rows = db.read(
            lambda c: db.execute(
                c,
                "SELECT organisation_id, type_id FROM events WHERE seq > ? AND seq <= ? LIMIT ?",
                (after_seq, upto_seq, limit + 1),
            ).fetchall()
        )
        if len(rows) > limit:
            return None
        activity: dict[int, set[int]] = {}
        for organisation_id, type_id in rows:
            activity.setdefault(organisation_id, set()).add(type_id)
        return activity

    def count(
        self,
        organisation_id: int,
        after_seq: int,
        flt: EventFilter | None = None,
        limit: int | None = None,
    ) -> int:
        """How many of the organisation's events (those ``flt`` selects) were committed
        after ``after_seq``; counting stops at ``limit``."""
        where = self._after(organisation_id, after_seq, flt)
        matching = f"SELECT 1 FROM events{where.sql}"
        if limit is not None:
            matching += f" LIMIT {int(limit)}"
        sql = f"SELECT COUNT(*) FROM ({matching}) AS matching"
        row = self._db.read(lambda c: c.execute(sql, where.params).fetchone())
        return int(row[0]) if row else 0

    def first(
        self, organisation_id: int, after_seq: int, flt: EventFilter | None = None
    ) -> bytes | None:
        """The body of the organisation's first event (that ``flt`` selects) committed after
        ``after_seq``."""
        where = self._after(organisation_id, after_seq, flt)
        sql = f"SELECT dictionary_id, body FROM events{where.sql} ORDER BY seq LIMIT 1"
        row = self._db.read(lambda c: c.execute(sql, where.params).fetchone())
        return self._db.served(row[0], bytes(row[1])) if row else None

    def _after(self, organisation_id: int, after_seq: int, flt: EventFilter | None) -> Where:
        """The organisation's events that ``flt`` selects, committed after ``after_seq``."""
        dialect = self._db.DIALECT
        scoped = (flt or EventFilter()).replace(organisation_ids=(organisation_id,))
        where = where_clause(scoped, dialect)  # never empty: it names the organisation
        return Where(f"{where.sql} AND seq > {dialect.mark}", [*where.params, after_seq])

    # -- the log by its fields ------------------------------------------------
    def query(self, query: EventQuery) -> EventPage:
        """A page of the records ``query`` selects, in its order."""
        db = self._db
        dialect = db.DIALECT
        mark = dialect.mark
        where = where_clause(query.filter, dialect)
        keyset = is_keyset_sort(query.sort)
        condition, condition_params = keyset_condition(query, mark) if keyset else ("", [])
        sql = "SELECT dictionary_id, body, ts, id FROM events" + where.sql
        if condition:
            sql += (" AND " if where.sql else " WHERE ") + condition
        sql += order_by(query.sort, dialect) + f" LIMIT {mark}"
        params: list[object] = [*where.params, *condition_params, query.per_page + 1]
        if query.cursor is None:
            sql += f" OFFSET {mark}"
            params.append((query.page - 1) * query.per_page)

        def run(conn: C) -> EventPage:
            rows = conn.execute(sql, params).fetchall()
            total: int | None = None
            if query.count and query.cursor is None:
                counted = conn.execute("SELECT COUNT(*) FROM events" + where.sql, where.params)
                total = int(counted.fetchone()[0])
            more = len(rows) > query.per_page
            rows = rows[: query.per_page]
            next_cursor = encode_cursor(rows[-1][2], rows[-1][3]) if more and keyset else None
            return EventPage([db.served(row[0], row[1]) for row in rows], total, next_cursor)

        return db.read(run, query.time_limit)

    def get(self, event_id: int, organisation_ids: tuple[int, ...] | None) -> bytes | None:
        """One record, or None if absent or not in ``organisation_ids``."""
        db = self._db
        row = db.read(
            lambda c: db.execute(
                c,
                "SELECT dictionary_id, body, organisation_id FROM events WHERE id = ?",
                (event_id,),
            ).fetchone()
        )
        if row is None or (organisation_ids is not None and row[2] not in organisation_ids):
            return None
        return db.served(row[0], row[1])

    def stats(self, query: StatsQuery) -> list[StatsRow]:
        """Event counts and data volume per time bucket and group (``StatsQuery``)."""

        def counts(sql: str, params: list[object]) -> list[Any]:
            return self._fetch(sql, params, query.time_limit)

        return rollup.stats(query, self._event_stats, counts, self._db.DIALECT)

    def _event_stats(self, query: StatsQuery) -> list[StatsRow]:
        rows = self._fetch(*stats_sql(query, self._db.DIALECT), query.time_limit)
        return [StatsRow(row[0], row[1], row[2], int(row[3]), float(row[4])) for row in rows]

    def _fetch(self, sql: str, params: list[object], time_limit: float | None) -> list[Any]:
        return self._db.read(lambda c: c.execute(sql, params).fetchall(), time_limit)
