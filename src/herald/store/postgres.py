"""The scale-out backend: PostgreSQL, shared by any number of API and worker processes.

Processes cooperate through the database alone:

- **Log positions.** PostgreSQL sequences hand out values at insert time but transactions
  commit in any order, so a reader that follows a plain sequence can pass a value whose
  transaction is still open and skip it for ever. Herald therefore derives ``seq`` from the
  writing transaction: ``(xid << 20) + row``, where ``xid`` is ``pg_current_xact_id()`` (a
  64-bit id that never wraps) and ``row`` the event's place in its batch. Every transaction
  with an xid below ``pg_snapshot_xmin(pg_current_snapshot())`` has finished, and a new one
  always gets a larger xid, so every position below ``xmin << 20`` is final: ``read_log``
  returns only those (the *safe watermark*). A long write transaction delays readers; it
  never makes them skip. The cost: an append is one statement, of at most 2**20 events.
- **Idempotency.** A unique index on a partitioned table must contain the partition key,
  so (organisation, provider, external_id) is claimed in the small ``event_keys`` table in
  the same statement that inserts the events; a concurrent duplicate waits for the first
  writer and then takes its record.
- **Partitions.** ``events`` is range-partitioned by day on ``ts``. Partitions exist for
  the retention window of the organisation that keeps events longest, plus
  ``PARTITIONS_AHEAD`` days: ``migrate``, every ``purge`` and a change of retention create
  them ahead of time, never a write (the write path refuses timestamps outside the
  window, and ``append`` refuses an event without a partition), so no request can make
  the table grow. ``purge`` drops the days every organisation's window has left (whole
  partitions, no vacuum) and deletes row by row only the events of organisations whose
  retention is shorter than the longest.
- **Node ids.** ``store.nodes.lease`` leases one of the 1024 node ids from the ``nodes`` table
  and renews it with a heartbeat (``store/nodes.py``); a lease not renewed for a minute is
  free again, and its former holder stops appending before that.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from psycopg.errors import (
    CheckViolation,
    DeadlockDetected,
    DiskFull,
    LockNotAvailable,
    OutOfMemory,
    QueryCanceled,
    ReadOnlySqlTransaction,
    SerializationFailure,
)
from psycopg_pool import ConnectionPool, PoolTimeout

from herald.events.types import (
    LOG_SCAN_ROWS,
    LogEntry,
    LogScan,
    log_scan,
)
from herald.gil import offer_gil
from herald.query.fields import FIELDS, Kind
from herald.record import NewEvent
from herald.store import migrator, rollup
from herald.store.errors import (
    Conflict,
    QueryTimeout,
    StoreError,
    StoreUnavailable,
    TryAgain,
    Unavailability,
)
from herald.store.maintenance import Maintenance
from herald.store.records import Codec, RecordMethods
from herald.store.sql import (
    EVENT_COLUMNS,
    LOG_COLUMNS,
    POSTGRES,
    DeviceKey,
    Where,
    device_keys,
    event_row,
    stored_body,
)
from herald.timefmt import now_ms

log = logging.getLogger("herald.store")
T = TypeVar("T")

DAY_MS = 86_400_000
PARTITIONS_AHEAD = 7
ROW_BITS = 20
MAX_BATCH = 1 << ROW_BITS
# Advisory lock keys (arbitrary, fixed): schema migrations, partition changes, node leases.
_MIGRATE_LOCK, _PARTITION_LOCK, _NODE_LOCK = 7_400_001, 7_400_002, 7_400_003
# ... and the choice of new ids per table and millisecond (SQLStoreBase.new_ids)
_ID_LOCKS = {
    "handlers": 7_400_004,
    "rejected_records": 7_400_005,
    "tokens": 7_400_006,
    "rules": 7_400_007,
}

_TYPES = {
    Kind.INT: "bigint",
    Kind.LEVEL: "bigint",
    Kind.TIME: "bigint",
    Kind.BOOL: "boolean",
    Kind.TEXT: "text",
}
_COLUMN_TYPES = {
    **{f.column: _TYPES[f.kind] for f in FIELDS if f.column},
    "body": "bytea",
    "volume_mb": "double precision",
    "dictionary_id": "smallint",
}
"""The PostgreSQL type of each event column."""
_COLUMNS = ", ".join(EVENT_COLUMNS)
# A batch goes in by binary COPY into a temporary table (psycopg formats COPY rows in C,
# where a column array of an ``unnest`` is built in Python element by element), then on to
# ``events`` in one statement that can skip the provider keys already taken.
_STAGE = "herald_append"
_STAGE_TYPES = [*(_COLUMN_TYPES[c] for c in EVENT_COLUMNS), "bigint"]
_CREATE_STAGE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} "
    f"({', '.join(f'{c} {_COLUMN_TYPES[c]}' for c in EVENT_COLUMNS)}, ord bigint) "
    "ON COMMIT DELETE ROWS"
)
_COPY_STAGE = f"COPY {_STAGE} FROM STDIN (FORMAT BINARY)"
_APPEND = f"""
WITH fresh_keys AS (
    INSERT INTO event_keys (organisation_id, provider, external_id, event_id, ts)
    SELECT organisation_id, provider, external_id, id, ts FROM {_STAGE}
    WHERE external_id IS NOT NULL
    ON CONFLICT DO NOTHING
    RETURNING event_id
)
INSERT INTO events (seq, {_COLUMNS})
SELECT (pg_current_xact_id()::text::bigint << {ROW_BITS}) + ord, {_COLUMNS} FROM {_STAGE}
WHERE external_id IS NULL OR id IN (SELECT event_id FROM fresh_keys)
RETURNING id
"""


def stage(conn: psycopg.Connection[Any], rows: Sequence[tuple[object, ...]]) -> None:
    """Put ``rows`` (``event_row``'s) in the transaction's staging table, for ``_APPEND``."""
    conn.execute(_CREATE_STAGE)  # a temporary table is the connection's: made once on each
    with conn.cursor().copy(_COPY_STAGE) as copy:
        copy.set_types(_STAGE_TYPES)
        for position, row in enumerate(rows, 1):
            copy.write_row((*row, position))


_STORED_BY_KEY = """
SELECT k.organisation_id, k.provider, k.external_id, e.dictionary_id, e.body
FROM event_keys k JOIN events e ON e.id = k.event_id AND e.ts = k.ts
WHERE (k.organisation_id, k.provider, k.external_id) IN
      (SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[]))
"""
_INSERT_DEVICE_KEYS = """
INSERT INTO device_keys (organisation_id, field, value, endpoint_id)
SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::bigint[])
ON CONFLICT DO NOTHING
"""
_WATERMARK = f"(pg_snapshot_xmin(pg_current_snapshot())::text::bigint << {ROW_BITS})"
_WINDOW_END = (
    f"SELECT seq FROM events WHERE seq > %s AND seq < {_WATERMARK} ORDER BY seq LIMIT 1 OFFSET %s"
)
_LAST_FINAL_SEQ = f"SELECT COALESCE(MAX(seq), 0) FROM events WHERE seq < {_WATERMARK}"


_TRY_AGAIN = (SerializationFailure, DeadlockDetected, LockNotAvailable)
_UNAVAILABLE = (
    (ReadOnlySqlTransaction, Unavailability.READ_ONLY),
    (DiskFull, Unavailability.FULL),
    (OutOfMemory, Unavailability.BUSY),
    (PoolTimeout, Unavailability.BUSY),
    (psycopg.OperationalError, Unavailability.DOWN),
)


def _translate(exc: Exception) -> StoreError:
    """The store's error for a driver error, by the error's class (its SQLSTATE)."""
    message = str(exc).strip()
    if isinstance(exc, psycopg.IntegrityError):
        return Conflict(message)
    if isinstance(exc, _TRY_AGAIN):
        return TryAgain(message)
    for kind, why in _UNAVAILABLE:
        if isinstance(exc, kind):
            return StoreUnavailable(message, why)
    return StoreError(message)


def partition_name(day: int) -> str:
    """``events_p20261123`` for the day starting at Unix millisecond ``day * DAY_MS``
    (the year always four digits: ``strftime("%Y")`` gives ``1`` for year 1)."""
    d = datetime.fromtimestamp(day * DAY_MS / 1000, tz=UTC)
    return f"events_p{d.year:04d}{d.month:02d}{d.day:02d}"


def _partition_day(name: str) -> int | None:
    """The day of a partition name, also of the unpadded names of older versions
    (``events_p10101``: year 1); None for a name that is not a day's."""
    digits = name.removeprefix("events_p")
    if len(digits) < 5 or not digits.isdigit():
        return None
    try:
        moment = datetime(int(digits[:-4]), int(digits[-4:-2]), int(digits[-2:]), tzinfo=UTC)
    except ValueError:
        return None
    return int(moment.timestamp() * 1000) // DAY_MS


@dataclass(slots=True)
class _Rows:
    """A batch of events as rows to insert: the records, and which share a provider key."""

    events: Sequence[NewEvent]
    bodies: list[bytes]
    rows: list[tuple[object, ...]]
    first: dict[tuple[int, str, str], int]  # key -> index of its first event
    repeats: dict[int, int]  # index -> index of the earlier event with its key

    @classmethod
    def of(cls, events: Sequence[NewEvent], ids: Sequence[int], codec: Codec) -> _Rows:
        batch = cls(events, [], [], {}, {})
        for index, (event, event_id) in enumerate(zip(events, ids, strict=True)):
            offer_gil(index)  # other requests' threads get their turns during a big batch
            batch.bodies.append(stored_body(event, event_id))
            if event.external_id is not None:
                key = (event.organisation_id, event.provider, event.external_id)
                if key in batch.first:
                    batch.repeats[index] = batch.first[key]
                    continue
                batch.first[key] = index
            packed = codec.pack(batch.bodies[index])
            batch.rows.append(event_row(event, event_id, packed, codec.newest))
        return batch

    def resolved(self, stored: dict[tuple[int, str, str], bytes]) -> list[bytes]:
        """The records to answer: the stored ones for taken keys, repeats as their first."""
        for key, body in stored.items():
            self.bodies[self.first[key]] = body
        for index, earlier in self.repeats.items():
            self.bodies[index] = self.bodies[earlier]
        return self.bodies


class PostgresStore(
    RecordMethods[psycopg.Connection[Any]],
):
    """The Store on a PostgreSQL database, through a pool of connections."""

    DIALECT = POSTGRES
    GREATEST = "GREATEST"
    LAST_SEQ = _LAST_FINAL_SEQ
    HORIZON = (
        "SELECT pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint "
        "FROM pg_current_snapshot() s"
    )
    EVENT_IDS_MARK = "?::bigint[]"
    LOCK_ROW = " FOR UPDATE"
    NODE_NOW = "clock_timestamp()"
    NODE_EXPIRED = "heartbeat < clock_timestamp() - make_interval(secs => ?)"

    def __init__(self, url: str, *, pool_size: int = 10, retention_days: float = 30.0) -> None:
        super().__init__()
        self.maintenance: Maintenance = self  # the schema and upkeep are the backend's own
        self.url = url
        self.default_retention_days = retention_days
        self._days: set[int] = set()  # partitions known to exist
        try:  # fail fast and clearly, rather than have the pool retry in the background
            psycopg.connect(url, connect_timeout=10).close()
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {reason}") from exc
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True},
            open=True,
            name="herald",
        )

    # -- connections ----------------------------------------------------------
    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self._pool.connection() as conn:
                yield conn
        except (PoolTimeout, psycopg.Error) as exc:
            raise _translate(exc) from exc

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[psycopg.Connection[Any]]:
        with self._connection() as conn, conn.transaction():
            if not durable:
                conn.execute("SET LOCAL synchronous_commit = off")
            yield conn

    def read(
        self, work: Callable[[psycopg.Connection[Any]], T], time_limit: float | None = None
    ) -> T:
        with self._connection() as conn:
            if time_limit is None:
                return work(conn)
            try:
                with conn.transaction():  # SET LOCAL's scope; each statement gets the limit
                    milliseconds = max(1, round(time_limit * 1000))  # 0 would mean no limit
                    conn.execute(f"SET LOCAL statement_timeout = {milliseconds}")
                    return work(conn)
            except QueryCanceled as exc:
                raise QueryTimeout(time_limit) from exc

    def write(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run ``work``, one write statement, in autocommit: its own transaction."""
        return self.read(work)

    def close(self) -> None:
        self.nodes.release()
        self._pool.close()

    # -- schema ---------------------------------------------------------------
    def migrate(self) -> None:
        """Apply every migration not applied yet (one process at a time), then partitions."""
        with self._connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATE_LOCK,))
            try:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                    "name TEXT NOT NULL, applied_ms BIGINT NOT NULL)"
                )
                applied = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
                for migration in migrator.status("postgres", applied).pending:
                    with conn.transaction():
                        conn.execute(migration.sql.encode())
                        conn.execute(
                            "INSERT INTO schema_migrations (version, name, applied_ms) "
                            "VALUES (%s, %s, %s)",
                            (migration.version, migration.name, now_ms()),
                        )
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATE_LOCK,))
        self._ensure_dictionary()
        self.handlers.upgrade_filters()
        self.ensure_partitions()
        if not self.backfill_if_small():
            log.warning(
                "events stored before the rat and provider_organisation columns were kept are "
                "not found by those filters until `herald db backfill-fields` has run"
            )

    def schema_status(self) -> migrator.SchemaStatus:
        """Which migrations this database has and which it still needs."""
        return migrator.status("postgres", self.schema_versions())

    def schema_versions(self) -> list[int]:
        """Versions of the migrations applied, in order (none on a new database)."""

        def versions(conn: psycopg.Connection[Any]) -> list[int]:
            if conn.execute("SELECT to_regclass('schema_migrations')").fetchone() == (None,):
                return []
            return [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]

        return self.read(versions)

    # -- partitions -----------------------------------------------------------
    def ensure_partitions(self, now: int | None = None) -> None:
        """Create the partitions of the longest retention window and ``PARTITIONS_AHEAD``
        days ahead, if missing: the one place partitions are made (module doc)."""
        now = now_ms() if now is None else now
        first, today = min(self.retention_cutoffs(now)) // DAY_MS, now // DAY_MS
        wanted = set(range(first, today + PARTITIONS_AHEAD + 1)) - self._days
        if not wanted:
            return
        with self.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PARTITION_LOCK,))
            for day in sorted(wanted):
                name = partition_name(day)
                if conn.execute("SELECT to_regclass(%s)", (name,)).fetchone() == (None,):
                    # CREATE + ATTACH locks the parent less than CREATE ... PARTITION OF.
                    conn.execute(f"CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS)")
                    conn.execute(
                        f"ALTER TABLE events ATTACH PARTITION {name} "
                        f"FOR VALUES FROM ({day * DAY_MS}) TO ({(day + 1) * DAY_MS})"
                    )
        self._days |= wanted

    def maintain(self) -> None:
        self.ensure_partitions()
        super().maintain()

    def partitions(self) -> list[str]:
        """The names of the event partitions, oldest first."""
        rows = self.read(
            lambda c: c.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'events'::regclass ORDER BY 1"
            ).fetchall()
        )
        return [row[0] for row in rows]

    def retention_changed(self) -> None:
        self.ensure_partitions()  # a longer window than any before needs its days

    # -- events ---------------------------------------------------------------
    def append(self, events: Sequence[NewEvent], ids: Sequence[int]) -> list[bytes]:
        if len(events) > MAX_BATCH:
            raise StoreError(f"at most {MAX_BATCH} events per append")
        self.before_insert(events)
        batch = _Rows.of(events, ids, self._codec())
        if not batch.rows:
            return batch.bodies
        try:
            stored = self._insert_batch(batch, ids)
        except StoreError as exc:
            if not isinstance(exc.__cause__, CheckViolation):
                raise
            raise Conflict(
                "an event's timestamp lies outside the days this store keeps "
                "(its organisation's retention window)"
            ) from exc
        return batch.resolved(stored)

    def _insert_batch(self, batch: _Rows, ids: Sequence[int]) -> dict[tuple[int, str, str], bytes]:
        """Insert in one transaction; return the records already stored for taken keys."""
        with self.transaction() as conn:
            found, taken = self._insert_rows(conn, batch, ids)
        if len(found) != taken:
            raise TryAgain("an event with this id is being purged; try again")
        return found

    def insert_events(
        self, conn: psycopg.Connection[Any], events: Sequence[NewEvent], ids: Sequence[int]
    ) -> list[bytes]:
        batch = _Rows.of(events, ids, self._codec())
        if not batch.rows:
            return batch.bodies
        found, taken = self._insert_rows(conn, batch, ids)
        if len(found) != taken:
            raise TryAgain("an event with this id is being purged; try again")
        return batch.resolved(found)

    def _insert_rows(
        self, conn: psycopg.Connection[Any], batch: _Rows, ids: Sequence[int]
    ) -> tuple[dict[tuple[int, str, str], bytes], int]:
        """Insert in one statement and count what was inserted; the records already stored
        for taken keys, and how many keys were taken."""
        rows = batch.rows
        # Before the counts: their rows stay locked until the commit (below).
        self.insert_device_keys(conn, device_keys(batch.events))
        stage(conn, rows)
        inserted = {row[0] for row in conn.execute(_APPEND).fetchall()}
        # Last in the transaction: the count rows stay locked only until the commit.
        fresh = (row for row in rows if row[0] in inserted)
        conn.cursor().executemany(self.sql(rollup.UPSERT), rollup.deltas(fresh))
        taken = [key for key, index in batch.first.items() if ids[index] not in inserted]
        if not taken:
            return {}, 0
        params = [list(part) for part in zip(*taken, strict=True)]
        found = {
            (row[0], row[1], row[2]): self.served(row[3], row[4])
            for row in conn.execute(_STORED_BY_KEY, params)
        }
        return found, len(taken)

    def insert_device_keys(self, conn: psycopg.Connection[Any], rows: Sequence[DeviceKey]) -> None:
        """Add ``rows`` to ``device_keys`` in one statement (their columns as arrays)."""
        if rows:
            conn.execute(_INSERT_DEVICE_KEYS, [list(column) for column in zip(*rows, strict=True)])

    def read_log(
        self, after_seq: int, limit: int, organisation_ids: tuple[int, ...] | None = None
    ) -> list[LogEntry]:
        """Events after ``after_seq`` in log order, up to the safe watermark (module doc)."""
        sql = f"SELECT {LOG_COLUMNS} FROM events WHERE seq > %s AND seq < {_WATERMARK}"
        params: list[object] = [after_seq]
        if organisation_ids is not None:
            sql += " AND organisation_id = ANY(%s)"
            params.append(list(organisation_ids))
        sql += " ORDER BY seq LIMIT %s"
        params.append(limit)
        return self._log_entries(self.read(lambda c: c.execute(sql, params).fetchall()))

    def scan_log(
        self,
        after_seq: int,
        limit: int,
        organisation_ids: tuple[int, ...],
        upto_seq: int | None = None,
        scan_rows: int = LOG_SCAN_ROWS,
        matching: Where | None = None,
    ) -> LogScan:
        upto = "" if upto_seq is None else " AND seq <= %s"
        bounds = [after_seq] if upto_seq is None else [after_seq, upto_seq]
        # The window (the next ``scan_rows`` rows of the log) is the inner LIMIT: the
        # executor pulls rows through it only until ``limit`` of the tenant's are found.
        # A filter reads the window's other columns: then it takes them all.
        inner, condition = (LOG_COLUMNS, "") if matching is None else ("*", f" AND {matching.sql}")
        sql = (
            f"SELECT {LOG_COLUMNS} FROM (SELECT {inner} "
            f"FROM events WHERE seq > %s AND seq < {_WATERMARK}{upto} ORDER BY seq LIMIT %s) w "
            f"WHERE organisation_id = ANY(%s){condition} ORDER BY seq LIMIT %s"
        )
        extra = matching.params if matching else []

        def run(conn: psycopg.Connection[Any]) -> tuple[list[Any], int | None, int]:
            # One snapshot for the statements: one watermark, so the window's end (and the
            # log's) is measured over the very rows the read saw (none of its events skipped).
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                params = [*bounds, scan_rows, list(organisation_ids), *extra, limit]
                rows = conn.execute(sql, params).fetchall()
                if len(rows) >= limit:
                    return rows, None, 0  # the window's end does not matter: the read is full
                bound = conn.execute(_WINDOW_END, (after_seq, scan_rows - 1)).fetchone()
                if bound is None and matching is not None:  # it read to the log's end
                    last = conn.execute(_LAST_FINAL_SEQ).fetchone()
                    return rows, None, int(last[0]) if last else 0
            return rows, (bound[0] if bound else None), 0

        rows, window, end = self.read(run)
        return log_scan(self._log_entries(rows), after_seq, limit, window, upto_seq, end)

    def last_seq(self) -> int:
        """The last final position: ``_read_log(_last_seq())`` returns only what comes later."""
        row = self.read(
            lambda c: c.execute(f"SELECT MAX(seq) FROM events WHERE seq < {_WATERMARK}").fetchone()
        )
        return int(row[0] or 0) if row else 0

    def purge(self, now: int | None = None, chunk: int = 10_000) -> int:
        """Drop the days every organisation's window has left, whole; delete the older events
        of organisations with a shorter retention than the longest, row by row (``chunk`` a
        transaction); create the partitions of the window ahead."""
        now = now_ms() if now is None else now
        self.ensure_partitions(now)
        cutoffs = self.retention_cutoffs(now)
        horizon = min(cutoffs)
        deleted = self._drop_days(horizon)
        for cutoff, organisation_ids in cutoffs.items():
            if cutoff > horizon:  # per organisation: its index (organisation, ts) finds them
                for ids in self.in_chunks(organisation_ids):
                    deleted += self._delete_older(cutoff, ids, chunk)
        return deleted

    def _drop_days(self, horizon: int) -> int:
        """Drop the partitions of the days that end by ``horizon``; how many events went."""
        deleted = 0
        for name in self.partitions():
            day = _partition_day(name)
            if day is None:
                log.warning("retention: partition %s is not named after a day; left alone", name)
                continue
            if (day + 1) * DAY_MS > horizon:
                continue
            with self.transaction() as conn:
                conn.execute("SET LOCAL lock_timeout = '5s'")
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PARTITION_LOCK,))
                if conn.execute("SELECT to_regclass(%s)", (name,)).fetchone() == (None,):
                    continue
                count = conn.execute(f"SELECT COUNT(*) FROM {name}").fetchone()
                conn.execute(
                    "DELETE FROM event_keys WHERE ts >= %s AND ts < %s",
                    (day * DAY_MS, (day + 1) * DAY_MS),
                )
                conn.execute(
                    "DELETE FROM event_counts WHERE hour_ms >= %s AND hour_ms < %s",
                    (day * DAY_MS, (day + 1) * DAY_MS),
                )
                conn.execute(f"DROP TABLE {name}")
            self._days.discard(day)
            deleted += int(count[0]) if count else 0
        return deleted

    def _delete_older(self, cutoff: int, organisation_ids: list[int], chunk: int) -> int:
        """Delete the events older than ``cutoff`` of ``organisation_ids`` (with their keys
        and counts), a chunk at a time."""
        counted = ", ".join(rollup.COUNTED)
        delete = (
            "DELETE FROM events WHERE (ts, id) IN (SELECT ts, id FROM events "
            "WHERE ts < %s AND organisation_id = ANY(%s::bigint[]) LIMIT %s) "
            f"RETURNING {counted}, provider, external_id"
        )
        deleted = 0
        while True:
            with self.transaction() as conn:
                rows = conn.execute(delete, (cutoff, organisation_ids, chunk)).fetchall()
                width = len(rollup.COUNTED)
                deltas = rollup.deltas((r[:width] for r in rows), -1, rollup.COUNTED)
                conn.cursor().executemany(self.sql(rollup.UPSERT), deltas)
                conn.execute(rollup.DROP_EMPTY)
                keys = [(r[0], r[-2], r[-1]) for r in rows if r[-1] is not None]
                if keys:
                    conn.execute(
                        "DELETE FROM event_keys WHERE (organisation_id, provider, external_id) "
                        "IN (SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[]))",
                        [list(part) for part in zip(*keys, strict=True)],
                    )
            deleted += len(rows)
            if len(rows) < chunk:
                return deleted

    # -- shared methods' hooks ------------------------------------------------
    def sql(self, sql: str) -> str:
        """psycopg's placeholders: ``?`` becomes ``%s``, a literal ``%`` ``%%``."""
        return sql.replace("%", "%%").replace("?", "%s")

    def any(self, column: str, values: tuple[int, ...]) -> tuple[str, list[object]]:
        return f"{column} = ANY(?)", [list(values)]

    def after_chosen_organisation_id(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('organisations', 'id'), "
            "(SELECT MAX(id) FROM organisations))"
        )

    def event_ids_param(self, event_ids: tuple[int, ...]) -> object:
        return list(event_ids)

    def event_ids(self, value: Any) -> tuple[int, ...]:
        return tuple(value)

    # -- event handlers -------------------------------------------------------
    def claim_handler_rows(self, owner: str, now_ms: int, lease_ms: int, columns: str) -> list[Any]:
        """Renew ``owner``'s leases, then lease the free and expired handlers.

        Renewing waits for a row lock rather than skipping the row: the lock on an own
        handler is the owner's own bookkeeping (``record_delivery``, ``advance_cursor``: one
        short transaction), and skipping it would leave the lease unrenewed and report a
        handler in the middle of a step as lost. Taking free and expired handlers skips the
        rows another worker is claiming (locked), so workers never queue behind each other.
        """
        until = now_ms + lease_ms

        def claim(conn: psycopg.Connection[Any]) -> list[Any]:
            renewed = conn.execute(
                "UPDATE handlers SET lease_until_ms = %s WHERE enabled AND owner = %s "
                f"RETURNING {columns}",
                (until, owner),
            ).fetchall()
            taken = conn.execute(
                "UPDATE handlers SET owner = %s, lease_until_ms = %s WHERE id IN ("
                "  SELECT id FROM handlers WHERE enabled "
                "  AND (owner IS NULL OR (owner <> %s AND lease_until_ms < %s)) "
                "  FOR UPDATE SKIP LOCKED"
                f") RETURNING {columns}",
                (owner, until, owner, now_ms),
            ).fetchall()
            return renewed + taken

        return self.read(claim)

    # -- node ids -------------------------------------------------------------
    def lock_nodes(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_NODE_LOCK,))

    def lock_ids(self, conn: psycopg.Connection[Any], table: str, ms: int) -> None:
        # (table, millisecond): writers in other milliseconds go on; a key of the two-int
        # form never meets the one-bigint keys above
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_ID_LOCKS[table], ms & 0x7FFFFFFF))
