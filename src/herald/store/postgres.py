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
- **Partitions.** ``events`` is range-partitioned by day on ``ts``. Partitions are created
  ahead (by ``migrate`` and by every ``purge``) and on demand for older days; ``purge``
  drops whole days, so retention works with a one-day granularity and costs no vacuum.
- **Node ids.** ``lease_node_id`` leases one of the 1024 node ids from the ``nodes`` table
  and renews it with a heartbeat; a lease not renewed for a minute is free again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from herald.model import NewEvent
from herald.store import migrator
from herald.store.base import (
    Delivery,
    EventPage,
    EventQuery,
    Handler,
    HandlerProgress,
    HandlerSpec,
    LogEntry,
    Organisation,
    Replay,
    StatsQuery,
    StatsRow,
    Token,
)
from herald.store.errors import Conflict, NotFound, StoreError, StoreUnavailable
from herald.store.sql import (
    EVENT_COLUMNS,
    encode_cursor,
    event_row,
    is_keyset_sort,
    keyset_condition,
    order_by,
    stats_sql,
    where_clause,
)
from herald.timefmt import now_ms

log = logging.getLogger("herald.store")
T = TypeVar("T")

DAY_MS = 86_400_000
PARTITIONS_AHEAD = 7
ROW_BITS = 20
MAX_BATCH = 1 << ROW_BITS
NODE_LEASE_SECONDS = 60
NODE_HEARTBEAT_SECONDS = 10
# Advisory lock keys (arbitrary, fixed): schema migrations, partition changes, node leases.
_MIGRATE_LOCK, _PARTITION_LOCK, _NODE_LOCK = 7_400_001, 7_400_002, 7_400_003

_TEXT_COLUMNS = (
    "endpoint_name iccid imsi imei ip_address username tags target_type target_id "
    "moniker provider external_id description country operator"
).split()
_COLUMN_TYPES = {
    "alert": "boolean",
    "body": "bytea",
    "volume_mb": "double precision",
    **dict.fromkeys(_TEXT_COLUMNS, "text"),
}
"""The PostgreSQL type of each event column that is not a BIGINT."""
_ARRAYS = ", ".join(f"%s::{_COLUMN_TYPES.get(c, 'bigint')}[]" for c in EVENT_COLUMNS)
_COLUMNS = ", ".join(EVENT_COLUMNS)
_APPEND = f"""
WITH input AS (
    SELECT * FROM unnest({_ARRAYS}) WITH ORDINALITY AS t({_COLUMNS}, ord)
), fresh_keys AS (
    INSERT INTO event_keys (organisation_id, provider, external_id, event_id, ts)
    SELECT organisation_id, provider, external_id, id, ts FROM input
    WHERE external_id IS NOT NULL
    ON CONFLICT DO NOTHING
    RETURNING event_id
)
INSERT INTO events (seq, {_COLUMNS})
SELECT (pg_current_xact_id()::text::bigint << {ROW_BITS}) + ord, {_COLUMNS} FROM input
WHERE external_id IS NULL OR id IN (SELECT event_id FROM fresh_keys)
RETURNING id
"""
_STORED_BY_KEY = """
SELECT k.organisation_id, k.provider, k.external_id, e.body
FROM event_keys k JOIN events e ON e.id = k.event_id AND e.ts = k.ts
WHERE (k.organisation_id, k.provider, k.external_id) IN
      (SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[]))
"""
_WATERMARK = f"(pg_snapshot_xmin(pg_current_snapshot())::text::bigint << {ROW_BITS})"
_LAST_FINAL_SEQ = f"SELECT COALESCE(MAX(seq), 0) FROM events WHERE seq < {_WATERMARK}"
_TOKEN_COLUMNS = "id, organisation_id, name, prefix, permissions, internal, created_ms, revoked_ms"


def _translate(exc: Exception) -> StoreError:
    message = str(exc).strip()
    if isinstance(exc, psycopg.IntegrityError):
        return Conflict(message)
    if isinstance(exc, PoolTimeout | psycopg.OperationalError):
        return StoreUnavailable(message)
    return StoreError(message)


def _ilike(sql: str) -> str:
    """SQLite's LIKE ignores ASCII case; ILIKE keeps the backends alike. The shared SQL holds
    column names and placeholders only, so the replacement cannot touch user text."""
    return sql.replace(" LIKE ", " ILIKE ")


def _token(row: tuple[Any, ...]) -> Token:
    return Token(
        id=row[0],
        organisation_id=row[1],
        name=row[2],
        prefix=row[3],
        permissions=tuple(orjson.loads(row[4])),
        internal=bool(row[5]),
        created_ms=row[6],
        revoked_ms=row[7],
    )


def partition_name(day: int) -> str:
    """``events_p20261123`` for the day starting at Unix millisecond ``day * DAY_MS``."""
    return "events_p" + datetime.fromtimestamp(day * DAY_MS / 1000, tz=UTC).strftime("%Y%m%d")


def _partition_day(name: str) -> int:
    moment = datetime.strptime(name.removeprefix("events_p"), "%Y%m%d").replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000) // DAY_MS


class PostgresStore:
    """The Store on a PostgreSQL database, through a pool of connections."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self._days: set[int] = set()  # partitions known to exist
        self._node: tuple[int, str] | None = None
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
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
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        with self._connection() as conn, conn.transaction():
            yield conn

    def _read(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        with self._connection() as conn:
            return work(conn)

    def close(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(5)
        if self._node is not None:
            node_id, holder = self._node
            try:
                with self._connection() as conn:
                    conn.execute(
                        "DELETE FROM nodes WHERE node_id = %s AND holder = %s", (node_id, holder)
                    )
            except StoreError:
                log.warning("could not release node id %d; it expires on its own", node_id)
            self._node = None
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
        self.ensure_partitions()

    def schema_status(self) -> migrator.SchemaStatus:
        """Which migrations this database has and which it still needs."""
        return migrator.status("postgres", self.schema_versions())

    def schema_versions(self) -> list[int]:
        """Versions of the migrations applied, in order (none on a new database)."""

        def versions(conn: psycopg.Connection[Any]) -> list[int]:
            if conn.execute("SELECT to_regclass('schema_migrations')").fetchone() == (None,):
                return []
            return [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]

        return self._read(versions)

    # -- partitions -----------------------------------------------------------
    def ensure_partitions(self, days: Iterable[int] = ()) -> None:
        """Create the partitions of ``days`` (and of today up to a week ahead) if missing."""
        today = now_ms() // DAY_MS
        wanted = (set(days) | set(range(today, today + PARTITIONS_AHEAD + 1))) - self._days
        if not wanted:
            return
        with self._transaction() as conn:
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

    def partitions(self) -> list[str]:
        """The names of the event partitions, oldest first."""
        rows = self._read(
            lambda c: c.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'events'::regclass ORDER BY 1"
            ).fetchall()
        )
        return [row[0] for row in rows]

    # -- events ---------------------------------------------------------------
    def append(self, events: Sequence[NewEvent], ids: Sequence[int]) -> list[bytes]:
        if len(events) > MAX_BATCH:
            raise StoreError(f"at most {MAX_BATCH} events per append")
        bodies: list[bytes] = []
        first: dict[tuple[int, str, str], int] = {}  # key -> index of its first event
        repeats: dict[int, int] = {}  # index -> index of the earlier event with its key
        rows: list[tuple[object, ...]] = []
        for index, (event, event_id) in enumerate(zip(events, ids, strict=True)):
            event.record["id"] = event_id
            bodies.append(orjson.dumps(event.record))
            if event.external_id is not None:
                key = (event.organisation_id, event.provider, event.external_id)
                if key in first:
                    repeats[index] = first[key]
                    continue
                first[key] = index
            rows.append(event_row(event, event_id, bodies[index]))
        if not rows:
            return bodies
        columns = [list(column) for column in zip(*rows, strict=True)]
        self.ensure_partitions({event.timestamp_ms // DAY_MS for event in events})
        try:
            stored = self._append(columns, first, ids)
        except StoreError as exc:
            if "no partition" not in str(exc):
                raise
            # A purge elsewhere dropped a partition this process thought it had.
            self._days.clear()
            self.ensure_partitions({event.timestamp_ms // DAY_MS for event in events})
            stored = self._append(columns, first, ids)
        for key, body in stored.items():
            bodies[first[key]] = body
        for index, earlier in repeats.items():
            bodies[index] = bodies[earlier]
        return bodies

    def _append(
        self,
        columns: list[list[object]],
        keyed: dict[tuple[int, str, str], int],
        ids: Sequence[int],
    ) -> dict[tuple[int, str, str], bytes]:
        """Insert in one statement; return the records already stored for taken keys."""
        with self._transaction() as conn:
            inserted = {row[0] for row in conn.execute(_APPEND, columns).fetchall()}
            taken = [key for key, index in keyed.items() if ids[index] not in inserted]
            if not taken:
                return {}
            params = [list(part) for part in zip(*taken, strict=True)]
            found = {
                (row[0], row[1], row[2]): bytes(row[3])
                for row in conn.execute(_STORED_BY_KEY, params)
            }
        if len(found) != len(taken):
            raise Conflict("an event with this id is being purged; try again")
        return found

    def query(self, query: EventQuery) -> EventPage:
        where = where_clause(query.filter, "%s")
        where_sql = _ilike(where.sql)
        keyset = is_keyset_sort(query.sort)
        condition, condition_params = keyset_condition(query, "%s") if keyset else ("", [])
        sql = "SELECT body, ts, id FROM events" + where_sql
        if condition:
            sql += (" AND " if where_sql else " WHERE ") + condition
        sql += order_by(query.sort) + " LIMIT %s"
        params: list[object] = [*where.params, *condition_params, query.per_page + 1]
        if query.cursor is None:
            sql += " OFFSET %s"
            params.append((query.page - 1) * query.per_page)

        def run(conn: psycopg.Connection[Any]) -> EventPage:
            rows = conn.execute(sql, params).fetchall()
            total: int | None = None
            if query.count and query.cursor is None:
                counted = conn.execute("SELECT COUNT(*) FROM events" + where_sql, where.params)
                total = int(counted.fetchone()[0])  # type: ignore[index]
            more = len(rows) > query.per_page
            rows = rows[: query.per_page]
            next_cursor = encode_cursor(rows[-1][1], rows[-1][2]) if more and keyset else None
            return EventPage([bytes(row[0]) for row in rows], total, next_cursor)

        return self._read(run)

    def get_event(self, event_id: int, organisation_ids: tuple[int, ...] | None) -> bytes | None:
        row = self._read(
            lambda c: c.execute(
                "SELECT body, organisation_id FROM events WHERE id = %s", (event_id,)
            ).fetchone()
        )
        if row is None or (organisation_ids is not None and row[1] not in organisation_ids):
            return None
        return bytes(row[0])

    def read_log(
        self, after_seq: int, limit: int, organisation_ids: tuple[int, ...] | None = None
    ) -> list[LogEntry]:
        """Events after ``after_seq`` in log order, up to the safe watermark (module doc)."""
        sql = (
            "SELECT seq, organisation_id, type_id, body FROM events "
            f"WHERE seq > %s AND seq < {_WATERMARK}"
        )
        params: list[object] = [after_seq]
        if organisation_ids is not None:
            sql += " AND organisation_id = ANY(%s)"
            params.append(list(organisation_ids))
        sql += " ORDER BY seq LIMIT %s"
        params.append(limit)
        rows = self._read(lambda c: c.execute(sql, params).fetchall())
        return [LogEntry(row[0], row[1], row[2], bytes(row[3])) for row in rows]

    def last_seq(self) -> int:
        """The last final position: ``read_log(last_seq())`` returns only what comes later."""
        row = self._read(
            lambda c: c.execute(f"SELECT MAX(seq) FROM events WHERE seq < {_WATERMARK}").fetchone()
        )
        return int(row[0] or 0) if row else 0

    def purge(self, before_ms: int, chunk: int = 10_000) -> int:
        """Drop the days that end by ``before_ms`` (whole partitions); create days ahead."""
        self.ensure_partitions()
        deleted = 0
        for name in self.partitions():
            day = _partition_day(name)
            if (day + 1) * DAY_MS > before_ms:
                continue
            with self._transaction() as conn:
                conn.execute("SET LOCAL lock_timeout = '5s'")
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PARTITION_LOCK,))
                if conn.execute("SELECT to_regclass(%s)", (name,)).fetchone() == (None,):
                    continue
                count = conn.execute(f"SELECT COUNT(*) FROM {name}").fetchone()
                conn.execute(
                    "DELETE FROM event_keys WHERE ts >= %s AND ts < %s",
                    (day * DAY_MS, (day + 1) * DAY_MS),
                )
                conn.execute(f"DROP TABLE {name}")
            self._days.discard(day)
            deleted += int(count[0]) if count else 0
        return deleted

    # -- organisations --------------------------------------------------------
    def create_organisation(self, name: str, organisation_id: int | None = None) -> Organisation:
        created = now_ms()
        with self._transaction() as conn:
            if organisation_id is None:
                row = conn.execute(
                    "INSERT INTO organisations (name, created_ms) VALUES (%s, %s) RETURNING id",
                    (name, created),
                ).fetchone()
            else:
                row = conn.execute(
                    "INSERT INTO organisations (id, name, created_ms) VALUES (%s, %s, %s) "
                    "RETURNING id",
                    (organisation_id, name, created),
                ).fetchone()
                # Keep the identity ahead of ids chosen by hand.
                conn.execute(
                    "SELECT setval(pg_get_serial_sequence('organisations', 'id'), "
                    "(SELECT MAX(id) FROM organisations))"
                )
        assert row is not None
        return Organisation(row[0], name, created)

    def get_organisation(self, organisation_id: int) -> Organisation | None:
        row = self._read(
            lambda c: c.execute(
                "SELECT id, name, created_ms FROM organisations WHERE id = %s", (organisation_id,)
            ).fetchone()
        )
        return Organisation(*row) if row else None

    def list_organisations(self) -> list[Organisation]:
        rows = self._read(
            lambda c: c.execute(
                "SELECT id, name, created_ms FROM organisations ORDER BY id"
            ).fetchall()
        )
        return [Organisation(*row) for row in rows]

    # -- tokens ---------------------------------------------------------------
    def create_token(
        self,
        *,
        token_hash: str,
        prefix: str,
        name: str,
        organisation_id: int | None,
        permissions: Sequence[str],
        internal: bool,
    ) -> Token:
        created = now_ms()
        with self._transaction() as conn:
            row = conn.execute(
                "INSERT INTO tokens (organisation_id, name, token_hash, prefix, permissions, "
                "internal, created_ms) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (
                    organisation_id,
                    name,
                    token_hash,
                    prefix,
                    orjson.dumps(list(permissions)).decode(),
                    internal,
                    created,
                ),
            ).fetchone()
        assert row is not None
        return Token(
            row[0], organisation_id, name, prefix, tuple(permissions), internal, created, None
        )

    def find_token(self, token_hash: str) -> Token | None:
        row = self._read(
            lambda c: c.execute(
                f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE token_hash = %s", (token_hash,)
            ).fetchone()
        )
        return _token(row) if row else None

    def get_token(self, token_id: int) -> Token | None:
        row = self._read(
            lambda c: c.execute(
                f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE id = %s", (token_id,)
            ).fetchone()
        )
        return _token(row) if row else None

    def list_tokens(self, organisation_id: int | None = None) -> list[Token]:
        sql = f"SELECT {_TOKEN_COLUMNS} FROM tokens"
        params: tuple[object, ...] = ()
        if organisation_id is not None:
            sql += " WHERE organisation_id = %s"
            params = (organisation_id,)
        rows = self._read(lambda c: c.execute(sql + " ORDER BY id", params).fetchall())
        return [_token(row) for row in rows]

    def revoke_token(self, token_id: int) -> Token:
        row = self._read(
            lambda c: c.execute(
                "UPDATE tokens SET revoked_ms = COALESCE(revoked_ms, %s) WHERE id = %s "
                f"RETURNING {_TOKEN_COLUMNS}",
                (now_ms(), token_id),
            ).fetchone()
        )
        if row is None:
            raise NotFound(f"no token {token_id}")
        return _token(row)

    def count_tokens(self) -> int:
        row = self._read(lambda c: c.execute("SELECT COUNT(*) FROM tokens").fetchone())
        return int(row[0]) if row else 0

    # -- meta -----------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._read(
            lambda c: c.execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()
        )
        return str(row[0]) if row else None

    def set_meta_if_absent(self, key: str, value: str) -> str:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (key, value),
            )
            row = conn.execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()
        assert row is not None
        return str(row[0])

    def stats(self, query: StatsQuery) -> list[StatsRow]:
        sql, params = stats_sql(query, "%s")
        rows = self._read(lambda c: c.execute(_ilike(sql), params).fetchall())
        return [StatsRow(row[0], row[1], row[2], int(row[3]), float(row[4])) for row in rows]

    # -- event handlers -------------------------------------------------------
    def create_handler(self, organisation_id: int, spec: HandlerSpec, secret: str) -> Handler:
        created = now_ms()
        row = self._read(
            lambda c: c.execute(
                "INSERT INTO handlers (organisation_id, name, type, url, format, filter, "
                "batch_max_events, batch_max_wait_ms, retention_ms, enabled, disabled_reason, "
                "secret, cursor_seq, created_ms, updated_ms) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                f"({_LAST_FINAL_SEQ}), %s, %s) RETURNING {_HANDLER_COLUMNS}",
                (
                    organisation_id,
                    *_spec_values(spec),
                    None if spec.enabled else "disabled by the user",
                    secret,
                    created,
                    created,
                ),
            ).fetchone()
        )
        assert row is not None
        return _handler(row)

    def get_handler(
        self, handler_id: int, organisation_ids: tuple[int, ...] | None = None
    ) -> Handler | None:
        sql, params = _scoped(_SELECT_HANDLER + " WHERE id = %s", [handler_id], organisation_ids)
        row = self._read(lambda c: c.execute(sql, params).fetchone())
        return _handler(row) if row else None

    def list_handlers(self, organisation_ids: tuple[int, ...] | None = None) -> list[Handler]:
        sql, params = _scoped(_SELECT_HANDLER + " WHERE TRUE", [], organisation_ids)
        rows = self._read(lambda c: c.execute(sql + " ORDER BY id", params).fetchall())
        return [_handler(row) for row in rows]

    def update_handler(
        self, handler_id: int, organisation_ids: tuple[int, ...] | None, spec: HandlerSpec
    ) -> Handler:
        enable = spec.enabled
        sql, params = _scoped(
            "UPDATE handlers SET name = %s, type = %s, url = %s, format = %s, filter = %s, "
            "batch_max_events = %s, batch_max_wait_ms = %s, retention_ms = %s, "
            "disabled_reason = CASE WHEN %s THEN NULL "
            "  WHEN enabled THEN 'disabled by the user' ELSE disabled_reason END, "
            "failures = CASE WHEN %s AND NOT enabled THEN 0 ELSE failures END, "
            "failing_since_ms = CASE WHEN %s AND NOT enabled THEN NULL ELSE failing_since_ms END, "
            "next_attempt_ms = CASE WHEN %s AND NOT enabled THEN NULL ELSE next_attempt_ms END, "
            "enabled = %s, updated_ms = %s WHERE id = %s",
            [*_spec_values(spec), enable, enable, enable, enable, enable, now_ms(), handler_id],
            organisation_ids,
        )
        return self._update_handler(sql, params, handler_id)

    def _update_handler(self, sql: str, params: list[object], handler_id: int) -> Handler:
        row = self._read(
            lambda c: c.execute(f"{sql} RETURNING {_HANDLER_COLUMNS}", params).fetchone()
        )
        if row is None:
            raise NotFound(f"no event handler {handler_id}")
        return _handler(row)

    def delete_handler(self, handler_id: int, organisation_ids: tuple[int, ...] | None) -> None:
        sql, params = _scoped("DELETE FROM handlers WHERE id = %s", [handler_id], organisation_ids)
        if self._read(lambda c: c.execute(sql, params).rowcount) == 0:
            raise NotFound(f"no event handler {handler_id}")

    def rotate_handler_secret(
        self,
        handler_id: int,
        organisation_ids: tuple[int, ...] | None,
        secret: str,
        previous_until_ms: int,
    ) -> Handler:
        sql, params = _scoped(
            "UPDATE handlers SET previous_secret = secret, previous_secret_until_ms = %s, "
            "secret = %s, updated_ms = %s WHERE id = %s",
            [previous_until_ms, secret, now_ms(), handler_id],
            organisation_ids,
        )
        return self._update_handler(sql, params, handler_id)

    def claim_handlers(self, owner: str, now_ms: int, lease_ms: int) -> list[Handler]:
        """Lease the free, expired and own handlers; rows another worker is claiming (locked)
        are skipped rather than waited for, so workers never queue behind each other."""
        rows = self._read(
            lambda c: c.execute(
                "UPDATE handlers SET owner = %s, lease_until_ms = %s WHERE id IN ("
                "  SELECT id FROM handlers WHERE enabled "
                "  AND (owner IS NULL OR owner = %s OR lease_until_ms < %s) "
                "  FOR UPDATE SKIP LOCKED"
                f") RETURNING {_HANDLER_COLUMNS}",
                (owner, now_ms + lease_ms, owner, now_ms),
            ).fetchall()
        )
        return sorted((_handler(row) for row in rows), key=lambda handler: handler.id)

    def release_handlers(self, owner: str) -> None:
        self._read(
            lambda c: c.execute(
                "UPDATE handlers SET owner = NULL, lease_until_ms = NULL WHERE owner = %s",
                (owner,),
            )
        )

    def record_delivery(
        self,
        owner: str,
        delivery: Delivery,
        progress: HandlerProgress | None,
        replay_cursor: tuple[int, int] | None = None,
    ) -> bool:
        with self._transaction() as conn:
            if progress is not None:
                updated = conn.execute(
                    "UPDATE handlers SET cursor_seq = %s, failures = %s, failing_since_ms = %s, "
                    "next_attempt_ms = %s, last_success_ms = COALESCE(%s, last_success_ms), "
                    "last_error = %s, enabled = enabled AND %s::text IS NULL, "
                    "disabled_reason = COALESCE(%s, disabled_reason), updated_ms = %s "
                    "WHERE id = %s AND owner = %s",
                    (
                        progress.cursor_seq,
                        progress.failures,
                        progress.failing_since_ms,
                        progress.next_attempt_ms,
                        progress.last_success_ms,
                        progress.last_error,
                        progress.disabled_reason,
                        progress.disabled_reason,
                        now_ms(),
                        delivery.handler_id,
                        owner,
                    ),
                )
                if updated.rowcount == 0:
                    return False
            if replay_cursor is not None:
                self._move_replay(conn, *replay_cursor)
            conn.execute(
                "INSERT INTO deliveries (handler_id, at_ms, kind, event_ids, status, outcome, "
                "error, latency_ms) VALUES (%s, %s, %s, %s::bigint[], %s, %s, %s, %s)",
                (
                    delivery.handler_id,
                    delivery.at_ms,
                    delivery.kind,
                    list(delivery.event_ids),
                    delivery.status,
                    delivery.outcome,
                    delivery.error,
                    delivery.latency_ms,
                ),
            )
        return True

    def advance_cursor(self, handler_id: int, owner: str, cursor_seq: int) -> bool:
        updated = self._read(
            lambda c: (
                c.execute(
                    "UPDATE handlers SET cursor_seq = GREATEST(cursor_seq, %s) "
                    "WHERE id = %s AND owner = %s",
                    (cursor_seq, handler_id, owner),
                ).rowcount
            )
        )
        return updated > 0

    def list_deliveries(
        self, handler_id: int, before_id: int | None = None, limit: int = 100
    ) -> list[Delivery]:
        sql = (
            "SELECT handler_id, at_ms, kind, event_ids, status, outcome, error, latency_ms, id "
            "FROM deliveries WHERE handler_id = %s"
        )
        params: list[object] = [handler_id]
        if before_id is not None:
            sql += " AND id < %s"
            params.append(before_id)
        sql += " ORDER BY id DESC LIMIT %s"
        params.append(limit)
        rows = self._read(lambda c: c.execute(sql, params).fetchall())
        return [Delivery(row[0], row[1], row[2], tuple(row[3]), *row[4:]) for row in rows]

    def create_replay(self, handler_id: int, from_ms: int, until_ms: int) -> Replay:
        created = now_ms()
        with self._transaction() as conn:
            handler = conn.execute(
                "SELECT organisation_id FROM handlers WHERE id = %s", (handler_id,)
            ).fetchone()
            if handler is None:
                raise NotFound(f"no event handler {handler_id}")
            bounds = conn.execute(
                "SELECT MIN(seq), MAX(seq) FROM events "
                "WHERE organisation_id = %s AND ts >= %s AND ts <= %s",
                (handler[0], from_ms, until_ms),
            ).fetchone()
            assert bounds is not None
            start, end = (bounds[0] - 1, bounds[1]) if bounds[0] is not None else (0, 0)
            done = created if end == 0 else None
            row = conn.execute(
                "INSERT INTO replays (handler_id, from_ms, until_ms, cursor_seq, end_seq, "
                "created_ms, done_ms) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (handler_id, from_ms, until_ms, start, end, created, done),
            ).fetchone()
        assert row is not None
        return Replay(row[0], handler_id, from_ms, until_ms, start, end, created, done)

    def pending_replays(self, handler_id: int) -> list[Replay]:
        rows = self._read(
            lambda c: c.execute(
                "SELECT id, handler_id, from_ms, until_ms, cursor_seq, end_seq, created_ms, "
                "done_ms FROM replays WHERE handler_id = %s AND done_ms IS NULL ORDER BY id",
                (handler_id,),
            ).fetchall()
        )
        return [Replay(*row) for row in rows]

    def advance_replay(self, replay_id: int, cursor_seq: int) -> None:
        with self._transaction() as conn:
            self._move_replay(conn, replay_id, cursor_seq)

    @staticmethod
    def _move_replay(conn: psycopg.Connection[Any], replay_id: int, cursor_seq: int) -> None:
        conn.execute(
            "UPDATE replays SET cursor_seq = GREATEST(cursor_seq, %s), "
            "done_ms = CASE WHEN %s >= end_seq THEN %s ELSE NULL END WHERE id = %s",
            (cursor_seq, cursor_seq, now_ms(), replay_id),
        )

    def count_log(self, organisation_id: int, after_seq: int) -> int:
        row = self._read(
            lambda c: c.execute(
                "SELECT COUNT(*) FROM events WHERE organisation_id = %s AND seq > %s",
                (organisation_id, after_seq),
            ).fetchone()
        )
        return int(row[0]) if row else 0

    # -- node ids -------------------------------------------------------------
    def lease_node_id(self) -> int:
        """Lease a node id no live process holds, and keep it with a heartbeat thread."""
        if self._node is not None:
            return self._node[0]
        holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        with self._transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_NODE_LOCK,))
            conn.execute(
                "DELETE FROM nodes WHERE heartbeat < clock_timestamp() - make_interval(secs => %s)",
                (NODE_LEASE_SECONDS,),
            )
            # The id free the longest is not necessarily known; the lowest free one will do:
            # an expired holder's ids are at least a lease period older than the new ones.
            row = conn.execute(
                "INSERT INTO nodes (node_id, holder, heartbeat) "
                "SELECT n, %s, clock_timestamp() FROM generate_series(0, 1023) AS n "
                "WHERE n NOT IN (SELECT node_id FROM nodes) ORDER BY n LIMIT 1 "
                "RETURNING node_id",
                (holder,),
            ).fetchone()
        if row is None:
            raise StoreUnavailable("all 1024 node ids are leased by live processes")
        self._node = (int(row[0]), holder)
        self._heartbeat = threading.Thread(
            target=self._beat, name="herald-node-heartbeat", daemon=True
        )
        self._heartbeat.start()
        return self._node[0]

    def _beat(self) -> None:
        while not self._stop.wait(NODE_HEARTBEAT_SECONDS):
            assert self._node is not None
            node_id, holder = self._node
            try:
                with self._connection() as conn:
                    renewed = conn.execute(
                        "UPDATE nodes SET heartbeat = clock_timestamp() "
                        "WHERE node_id = %s AND holder = %s",
                        (node_id, holder),
                    ).rowcount
            except StoreError as exc:
                log.warning("node id %d: heartbeat failed (%s)", node_id, exc)
                continue
            if not renewed:
                log.error("node id %d: lease lost; ids may collide with its new holder", node_id)


_HANDLER_COLUMNS = (
    "id, organisation_id, name, type, url, format, filter, batch_max_events, "
    "batch_max_wait_ms, retention_ms, enabled, disabled_reason, secret, previous_secret, "
    "previous_secret_until_ms, cursor_seq, failures, failing_since_ms, next_attempt_ms, "
    "last_success_ms, last_error, owner, lease_until_ms, created_ms, updated_ms"
)
_SELECT_HANDLER = f"SELECT {_HANDLER_COLUMNS} FROM handlers"


def _spec_values(spec: HandlerSpec) -> tuple[object, ...]:
    """The spec's columns: name, type, url, format, filter, batch, retention, enabled."""
    return (
        spec.name,
        spec.type,
        spec.url,
        spec.format,
        orjson.dumps(spec.filter).decode(),
        spec.batch_max_events,
        spec.batch_max_wait_ms,
        spec.retention_ms,
        spec.enabled,
    )


def _scoped(
    sql: str, params: list[object], organisation_ids: tuple[int, ...] | None
) -> tuple[str, list[object]]:
    """Narrow a statement on handlers to the caller's organisations (None: all)."""
    if organisation_ids is None:
        return sql, params
    return f"{sql} AND organisation_id = ANY(%s)", [*params, list(organisation_ids)]


def _handler(row: tuple[Any, ...]) -> Handler:
    spec = HandlerSpec(
        name=row[2],
        type=row[3],
        url=row[4],
        format=row[5],
        filter=orjson.loads(row[6]),
        batch_max_events=row[7],
        batch_max_wait_ms=row[8],
        retention_ms=row[9],
        enabled=bool(row[10]),
    )
    return Handler(row[0], row[1], spec, *row[11:])
