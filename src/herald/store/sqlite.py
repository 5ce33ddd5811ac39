"""The embedded backend: one SQLite file in WAL mode.

One writer connection behind a lock (SQLite has one writer at a time anyway) and one reader
connection per thread, so queries never wait on writes.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import orjson

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

T = TypeVar("T")
_INSERT_EVENT = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
)
_TOKEN_COLUMNS = "id, organisation_id, name, prefix, permissions, internal, created_ms, revoked_ms"
_UNAVAILABLE_MARKERS = ("locked", "busy", "readonly", "read-only", "disk", "full", "i/o")


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:///path`` URL (``sqlite:///:memory:`` is refused)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url == prefix:
        raise ValueError(f"not a sqlite URL: {url!r} (expected sqlite:///path/to/file.db)")
    path = url[len(prefix) :]
    if path == ":memory:":
        raise ValueError("an in-memory database cannot be shared between connections")
    return path


def _translate(exc: sqlite3.Error) -> StoreError:
    message = str(exc)
    if isinstance(exc, sqlite3.IntegrityError):
        return Conflict(message)
    if isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError) and any(
        marker in message.lower() for marker in _UNAVAILABLE_MARKERS
    ):
        return StoreUnavailable(message)
    return StoreError(message)


def _token(row: sqlite3.Row | tuple[Any, ...]) -> Token:
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


class SQLiteStore:
    """The Store on one SQLite file."""

    def __init__(self, url: str, synchronous: str = "FULL") -> None:
        self.path = sqlite_path(url)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._synchronous = synchronous
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._writer = self._connect()

    # -- connections ----------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10
            )
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA cache_size = -32000")
        except sqlite3.Error as exc:
            raise _translate(exc) from exc
        with self._connections_lock:
            self._connections.append(conn)
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The writer connection inside ``BEGIN IMMEDIATE ... COMMIT``."""
        with self._write_lock:
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _translate(exc) from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise _translate(exc) from exc
                raise

    def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return work(self._reader())
        except sqlite3.Error as exc:
            raise _translate(exc) from exc

    def close(self) -> None:
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()

    # -- schema ---------------------------------------------------------------
    def migrate(self) -> None:
        """Apply every migration not applied yet, each in its own transaction."""
        with self._write_lock:
            conn = self._writer
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms INTEGER NOT NULL)"
            )
            applied = [row[0] for row in conn.execute("SELECT version FROM schema_migrations")]
            for migration in migrator.status("sqlite", applied).pending:
                record = (
                    "INSERT INTO schema_migrations (version, name, applied_ms) "
                    f"VALUES ({migration.version}, '{migration.name}', {now_ms()});"
                )
                try:
                    conn.executescript(f"BEGIN IMMEDIATE;\n{migration.sql}\n{record}\nCOMMIT;")
                except sqlite3.Error as exc:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise _translate(exc) from exc

    def schema_status(self) -> migrator.SchemaStatus:
        """Which migrations this database has and which it still needs."""
        return migrator.status("sqlite", self.schema_versions())

    def schema_versions(self) -> list[int]:
        """Versions of the migrations applied, in order (none on a new file)."""

        def versions(conn: sqlite3.Connection) -> list[int]:
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
            ).fetchone()
            if not exists:
                return []
            return [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]

        return self._read(versions)

    # -- events ---------------------------------------------------------------
    def append(self, events: Sequence[NewEvent], ids: Sequence[int]) -> list[bytes]:
        bodies: list[bytes] = []
        for event, event_id in zip(events, ids, strict=True):
            event.record["id"] = event_id
            bodies.append(orjson.dumps(event.record))
        keyed = [i for i, event in enumerate(events) if event.external_id is not None]
        with self._transaction() as conn:
            stored = self._stored_by_external_id(conn, [events[i] for i in keyed])
            rows = []
            for index, (event, event_id) in enumerate(zip(events, ids, strict=True)):
                if event.external_id is not None:
                    key = (event.organisation_id, event.provider, event.external_id)
                    if key in stored:
                        bodies[index] = stored[key]
                        continue
                    stored[key] = bodies[index]  # a repeat within the batch is stored once
                rows.append(event_row(event, event_id, bodies[index]))
            conn.executemany(_INSERT_EVENT, rows)
        return bodies

    @staticmethod
    def _stored_by_external_id(
        conn: sqlite3.Connection, events: Sequence[NewEvent]
    ) -> dict[tuple[int, str, str], bytes]:
        groups: dict[tuple[int, str], set[str]] = {}
        for event in events:
            assert event.external_id is not None
            groups.setdefault((event.organisation_id, event.provider), set()).add(event.external_id)
        found: dict[tuple[int, str, str], bytes] = {}
        for (organisation_id, provider), external_ids in groups.items():
            values = sorted(external_ids)
            for start in range(0, len(values), 500):
                chunk = values[start : start + 500]
                rows = conn.execute(
                    "SELECT external_id, body FROM events WHERE organisation_id = ? "
                    f"AND provider = ? AND external_id IN ({', '.join('?' * len(chunk))})",
                    (organisation_id, provider, *chunk),
                )
                for external_id, body in rows:
                    found[(organisation_id, provider, external_id)] = body
        return found

    def query(self, query: EventQuery) -> EventPage:
        where = where_clause(query.filter, "?")
        keyset = is_keyset_sort(query.sort)
        condition, condition_params = keyset_condition(query, "?") if keyset else ("", [])
        sql = "SELECT body, ts, id FROM events" + where.sql
        if condition:
            sql += (" AND " if where.sql else " WHERE ") + condition
        sql += order_by(query.sort) + " LIMIT ?"
        params: list[object] = [*where.params, *condition_params, query.per_page + 1]
        if query.cursor is None:
            sql += " OFFSET ?"
            params.append((query.page - 1) * query.per_page)

        def run(conn: sqlite3.Connection) -> EventPage:
            rows = conn.execute(sql, params).fetchall()
            total: int | None = None
            if query.count and query.cursor is None:
                counted = conn.execute("SELECT COUNT(*) FROM events" + where.sql, where.params)
                total = int(counted.fetchone()[0])
            more = len(rows) > query.per_page
            rows = rows[: query.per_page]
            next_cursor = encode_cursor(rows[-1][1], rows[-1][2]) if more and keyset else None
            return EventPage([row[0] for row in rows], total, next_cursor)

        return self._read(run)

    def get_event(self, event_id: int, organisation_ids: tuple[int, ...] | None) -> bytes | None:
        row = self._read(
            lambda c: c.execute(
                "SELECT body, organisation_id FROM events WHERE id = ?", (event_id,)
            ).fetchone()
        )
        if row is None or (organisation_ids is not None and row[1] not in organisation_ids):
            return None
        body: bytes = row[0]
        return body

    def read_log(
        self, after_seq: int, limit: int, organisation_ids: tuple[int, ...] | None = None
    ) -> list[LogEntry]:
        sql = "SELECT seq, organisation_id, type_id, body FROM events WHERE seq > ?"
        params: list[object] = [after_seq]
        if organisation_ids is not None:
            sql += f" AND organisation_id IN ({', '.join('?' * len(organisation_ids))})"
            params.extend(organisation_ids)
        sql += " ORDER BY seq LIMIT ?"
        params.append(limit)
        rows = self._read(lambda c: c.execute(sql, params).fetchall())
        return [LogEntry(*row) for row in rows]

    def last_seq(self) -> int:
        row = self._read(lambda c: c.execute("SELECT MAX(seq) FROM events").fetchone())
        return int(row[0] or 0)

    def purge(self, before_ms: int, chunk: int = 10_000) -> int:
        deleted = 0
        while True:
            with self._transaction() as conn:
                cursor = conn.execute(
                    "DELETE FROM events WHERE seq IN "
                    "(SELECT seq FROM events WHERE ts < ? ORDER BY ts LIMIT ?)",
                    (before_ms, chunk),
                )
                count = cursor.rowcount
            deleted += count
            if count < chunk:
                return deleted

    # -- organisations --------------------------------------------------------
    def create_organisation(self, name: str, organisation_id: int | None = None) -> Organisation:
        created = now_ms()
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO organisations (id, name, created_ms) VALUES (?, ?, ?)",
                (organisation_id, name, created),
            )
            new_id = cursor.lastrowid
        assert new_id is not None
        return Organisation(new_id, name, created)

    def get_organisation(self, organisation_id: int) -> Organisation | None:
        row = self._read(
            lambda c: c.execute(
                "SELECT id, name, created_ms FROM organisations WHERE id = ?", (organisation_id,)
            ).fetchone()
        )
        return Organisation(*row) if row else None

    def list_organisations(self) -> list[Organisation]:
        rows = self._read(
            lambda c: c.execute("SELECT id, name, created_ms FROM organisations ORDER BY id")
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
            cursor = conn.execute(
                "INSERT INTO tokens (organisation_id, name, token_hash, prefix, permissions, "
                "internal, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    organisation_id,
                    name,
                    token_hash,
                    prefix,
                    orjson.dumps(list(permissions)).decode(),
                    internal,
                    created,
                ),
            )
            token_id = cursor.lastrowid
        assert token_id is not None
        return Token(
            token_id, organisation_id, name, prefix, tuple(permissions), internal, created, None
        )

    def find_token(self, token_hash: str) -> Token | None:
        row = self._read(
            lambda c: c.execute(
                f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE token_hash = ?", (token_hash,)
            ).fetchone()
        )
        return _token(row) if row else None

    def get_token(self, token_id: int) -> Token | None:
        row = self._read(
            lambda c: c.execute(
                f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE id = ?", (token_id,)
            ).fetchone()
        )
        return _token(row) if row else None

    def list_tokens(self, organisation_id: int | None = None) -> list[Token]:
        sql = f"SELECT {_TOKEN_COLUMNS} FROM tokens"
        params: tuple[object, ...] = ()
        if organisation_id is not None:
            sql += " WHERE organisation_id = ?"
            params = (organisation_id,)
        rows = self._read(lambda c: c.execute(sql + " ORDER BY id", params).fetchall())
        return [_token(row) for row in rows]

    def revoke_token(self, token_id: int) -> Token:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE tokens SET revoked_ms = COALESCE(revoked_ms, ?) WHERE id = ?",
                (now_ms(), token_id),
            )
            row = conn.execute(
                f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE id = ?", (token_id,)
            ).fetchone()
        if row is None:
            raise NotFound(f"no token {token_id}")
        return _token(row)

    def count_tokens(self) -> int:
        return int(self._read(lambda c: c.execute("SELECT COUNT(*) FROM tokens").fetchone()[0]))

    # -- meta -----------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._read(
            lambda c: c.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        )
        return str(row[0]) if row else None

    def set_meta_if_absent(self, key: str, value: str) -> str:
        with self._transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value))
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0])

    # -- event handlers -------------------------------------------------------
    def create_handler(self, organisation_id: int, spec: HandlerSpec, secret: str) -> Handler:
        created = now_ms()
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO handlers (organisation_id, name, type, url, format, filter, "
                "batch_max_events, batch_max_wait_ms, retention_ms, enabled, disabled_reason, "
                "secret, cursor_seq, created_ms, updated_ms) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "(SELECT COALESCE(MAX(seq), 0) FROM events), ?, ?)",
                (
                    organisation_id,
                    *_spec_values(spec),
                    None if spec.enabled else "disabled by the user",
                    secret,
                    created,
                    created,
                ),
            )
            row = conn.execute(_SELECT_HANDLER + " WHERE id = ?", (cursor.lastrowid,)).fetchone()
        return _handler(row)

    def get_handler(
        self, handler_id: int, organisation_ids: tuple[int, ...] | None = None
    ) -> Handler | None:
        sql, params = _scoped(_SELECT_HANDLER + " WHERE id = ?", [handler_id], organisation_ids)
        row = self._read(lambda c: c.execute(sql, params).fetchone())
        return _handler(row) if row else None

    def list_handlers(self, organisation_ids: tuple[int, ...] | None = None) -> list[Handler]:
        sql, params = _scoped(_SELECT_HANDLER + " WHERE 1 = 1", [], organisation_ids)
        rows = self._read(lambda c: c.execute(sql + " ORDER BY id", params).fetchall())
        return [_handler(row) for row in rows]

    def update_handler(
        self, handler_id: int, organisation_ids: tuple[int, ...] | None, spec: HandlerSpec
    ) -> Handler:
        sql, params = _scoped(
            "UPDATE handlers SET name = ?, type = ?, url = ?, format = ?, filter = ?, "
            "batch_max_events = ?, batch_max_wait_ms = ?, retention_ms = ?, "
            "disabled_reason = CASE WHEN ? THEN NULL "
            "  WHEN enabled THEN 'disabled by the user' ELSE disabled_reason END, "
            "failures = CASE WHEN ? AND NOT enabled THEN 0 ELSE failures END, "
            "failing_since_ms = CASE WHEN ? AND NOT enabled THEN NULL ELSE failing_since_ms END, "
            "next_attempt_ms = CASE WHEN ? AND NOT enabled THEN NULL ELSE next_attempt_ms END, "
            "enabled = ?, updated_ms = ? WHERE id = ?",
            [
                *_spec_values(spec)[:-1],  # all but enabled, set last
                spec.enabled,
                spec.enabled,
                spec.enabled,
                spec.enabled,
                spec.enabled,
                now_ms(),
                handler_id,
            ],
            organisation_ids,
        )
        with self._transaction() as conn:
            if conn.execute(sql, params).rowcount == 0:
                raise NotFound(f"no event handler {handler_id}")
            row = conn.execute(_SELECT_HANDLER + " WHERE id = ?", (handler_id,)).fetchone()
        return _handler(row)

    def delete_handler(self, handler_id: int, organisation_ids: tuple[int, ...] | None) -> None:
        sql, params = _scoped("DELETE FROM handlers WHERE id = ?", [handler_id], organisation_ids)
        with self._transaction() as conn:
            if conn.execute(sql, params).rowcount == 0:
                raise NotFound(f"no event handler {handler_id}")

    def rotate_handler_secret(
        self,
        handler_id: int,
        organisation_ids: tuple[int, ...] | None,
        secret: str,
        previous_until_ms: int,
    ) -> Handler:
        sql, params = _scoped(
            "UPDATE handlers SET previous_secret = secret, previous_secret_until_ms = ?, "
            "secret = ?, updated_ms = ? WHERE id = ?",
            [previous_until_ms, secret, now_ms(), handler_id],
            organisation_ids,
        )
        with self._transaction() as conn:
            if conn.execute(sql, params).rowcount == 0:
                raise NotFound(f"no event handler {handler_id}")
            row = conn.execute(_SELECT_HANDLER + " WHERE id = ?", (handler_id,)).fetchone()
        return _handler(row)

    def claim_handlers(self, owner: str, now_ms: int, lease_ms: int) -> list[Handler]:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE handlers SET owner = ?, lease_until_ms = ? WHERE enabled "
                "AND (owner IS NULL OR owner = ? OR lease_until_ms < ?)",
                (owner, now_ms + lease_ms, owner, now_ms),
            )
            rows = conn.execute(
                _SELECT_HANDLER + " WHERE enabled AND owner = ? ORDER BY id", (owner,)
            ).fetchall()
        return [_handler(row) for row in rows]

    def release_handlers(self, owner: str) -> None:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE handlers SET owner = NULL, lease_until_ms = NULL WHERE owner = ?", (owner,)
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
                    "UPDATE handlers SET cursor_seq = ?, failures = ?, failing_since_ms = ?, "
                    "next_attempt_ms = ?, last_success_ms = COALESCE(?, last_success_ms), "
                    "last_error = ?, enabled = enabled AND ? IS NULL, "
                    "disabled_reason = COALESCE(?, disabled_reason), updated_ms = ? "
                    "WHERE id = ? AND owner = ?",
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
                "error, latency_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    delivery.handler_id,
                    delivery.at_ms,
                    delivery.kind,
                    orjson.dumps(delivery.event_ids).decode(),
                    delivery.status,
                    delivery.outcome,
                    delivery.error,
                    delivery.latency_ms,
                ),
            )
        return True

    def advance_cursor(self, handler_id: int, owner: str, cursor_seq: int) -> bool:
        with self._transaction() as conn:
            updated = conn.execute(
                "UPDATE handlers SET cursor_seq = MAX(cursor_seq, ?) WHERE id = ? AND owner = ?",
                (cursor_seq, handler_id, owner),
            )
        return updated.rowcount > 0

    def list_deliveries(
        self, handler_id: int, before_id: int | None = None, limit: int = 100
    ) -> list[Delivery]:
        sql = (
            "SELECT handler_id, at_ms, kind, event_ids, status, outcome, error, latency_ms, id "
            "FROM deliveries WHERE handler_id = ?"
        )
        params: list[object] = [handler_id]
        if before_id is not None:
            sql += " AND id < ?"
            params.append(before_id)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        rows = self._read(lambda c: c.execute(sql, params).fetchall())
        return [
            Delivery(row[0], row[1], row[2], tuple(orjson.loads(row[3])), *row[4:]) for row in rows
        ]

    def create_replay(self, handler_id: int, from_ms: int, until_ms: int) -> Replay:
        created = now_ms()
        with self._transaction() as conn:
            handler = conn.execute(
                "SELECT organisation_id FROM handlers WHERE id = ?", (handler_id,)
            ).fetchone()
            if handler is None:
                raise NotFound(f"no event handler {handler_id}")
            start, end = conn.execute(
                "SELECT MIN(seq), MAX(seq) FROM events "
                "WHERE organisation_id = ? AND ts >= ? AND ts <= ?",
                (handler[0], from_ms, until_ms),
            ).fetchone()
            start, end = (start - 1, end) if start is not None else (0, 0)
            cursor = conn.execute(
                "INSERT INTO replays (handler_id, from_ms, until_ms, cursor_seq, end_seq, "
                "created_ms, done_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (handler_id, from_ms, until_ms, start, end, created, created if end == 0 else None),
            )
            replay_id = cursor.lastrowid
        assert replay_id is not None
        return Replay(
            replay_id, handler_id, from_ms, until_ms, start, end, created, None if end else created
        )

    def pending_replays(self, handler_id: int) -> list[Replay]:
        rows = self._read(
            lambda c: c.execute(
                "SELECT id, handler_id, from_ms, until_ms, cursor_seq, end_seq, created_ms, "
                "done_ms FROM replays WHERE handler_id = ? AND done_ms IS NULL ORDER BY id",
                (handler_id,),
            ).fetchall()
        )
        return [Replay(*row) for row in rows]

    def advance_replay(self, replay_id: int, cursor_seq: int) -> None:
        with self._transaction() as conn:
            self._move_replay(conn, replay_id, cursor_seq)

    @staticmethod
    def _move_replay(conn: sqlite3.Connection, replay_id: int, cursor_seq: int) -> None:
        conn.execute(
            "UPDATE replays SET cursor_seq = MAX(cursor_seq, ?), "
            "done_ms = CASE WHEN ? >= end_seq THEN ? ELSE NULL END WHERE id = ?",
            (cursor_seq, cursor_seq, now_ms(), replay_id),
        )

    def count_log(self, organisation_id: int, after_seq: int) -> int:
        row = self._read(
            lambda c: c.execute(
                "SELECT COUNT(*) FROM events WHERE organisation_id = ? AND seq > ?",
                (organisation_id, after_seq),
            ).fetchone()
        )
        return int(row[0])

    # -- stats ----------------------------------------------------------------
    def stats(self, query: StatsQuery) -> list[StatsRow]:
        sql, params = stats_sql(query, "?")
        rows = self._read(lambda c: c.execute(sql, params).fetchall())
        return [StatsRow(row[0], row[1], row[2], int(row[3]), float(row[4])) for row in rows]


_SELECT_HANDLER = (
    "SELECT id, organisation_id, name, type, url, format, filter, batch_max_events, "
    "batch_max_wait_ms, retention_ms, enabled, disabled_reason, secret, previous_secret, "
    "previous_secret_until_ms, cursor_seq, failures, failing_since_ms, next_attempt_ms, "
    "last_success_ms, last_error, owner, lease_until_ms, created_ms, updated_ms FROM handlers"
)


def _spec_values(spec: HandlerSpec) -> tuple[object, ...]:
    """The spec's columns in the order name, type, url, format, filter, batch, retention,
    enabled."""
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
    marks = ", ".join("?" * len(organisation_ids)) or "NULL"
    return f"{sql} AND organisation_id IN ({marks})", [*params, *organisation_ids]


def _handler(row: sqlite3.Row | tuple[Any, ...]) -> Handler:
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
