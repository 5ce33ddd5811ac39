"""The embedded backend: one SQLite file in WAL mode.

One writer connection behind a lock (SQLite has one writer at a time anyway) and a pool of
reader connections, so queries never wait on writes.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import orjson

from herald.events.types import (
    LOG_SCAN_ROWS,
    LogEntry,
    LogScan,
    log_scan,
)
from herald.gil import offer_gil
from herald.record import NewEvent
from herald.store import migrator, rollup
from herald.store.errors import (
    Conflict,
    QueryTimeout,
    StoreError,
    StoreUnavailable,
    Unavailability,
)
from herald.store.maintenance import Maintenance
from herald.store.records import RecordMethods
from herald.store.sql import (
    EVENT_COLUMNS,
    LOG_COLUMNS,
    SQLITE,
    DeviceKey,
    Where,
    device_keys,
    event_row,
    stored_body,
)
from herald.timefmt import now_ms

T = TypeVar("T")
_INSERT_EVENT = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
)
_CACHE_KIB = 16_000  # page cache per connection
BUSY_TIMEOUT_SECONDS = 10.0  # how long a statement waits for another process's write lock
_CHECKPOINT_PAGES = 10_000
_WAL_LIMIT_BYTES = 64_000_000  # the WAL file is truncated back to this after a checkpoint
_IDLE_READERS = 8  # readers kept between calls; a burst's extra ones are closed (and caches)
_CLOCK_STEPS = 20_000  # virtual-machine steps between looks at a time limit (~0.2 ms of work)
_INTERRUPTED = 9  # SQLITE_INTERRUPT: the progress handler stopped the statement
_KNOWN_DEVICE_KEYS = 250_000  # device_keys rows remembered as written (~200 bytes each)
# SQLite's primary result codes (the low byte of ``sqlite_errorcode``) that mean "not now".
_UNAVAILABLE_CODES = {
    5: Unavailability.BUSY,  # SQLITE_BUSY
    6: Unavailability.BUSY,  # SQLITE_LOCKED
    8: Unavailability.READ_ONLY,  # SQLITE_READONLY
    10: Unavailability.DOWN,  # SQLITE_IOERR
    13: Unavailability.FULL,  # SQLITE_FULL
    14: Unavailability.DOWN,  # SQLITE_CANTOPEN
    23: Unavailability.READ_ONLY,  # SQLITE_AUTH (a file the process may not write)
}


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
    """The store's error for a driver error: by class, then by SQLite's result code."""
    message = str(exc)
    if isinstance(exc, sqlite3.IntegrityError):
        return Conflict(message)
    code = getattr(exc, "sqlite_errorcode", None)
    why = _UNAVAILABLE_CODES.get(code & 0xFF) if isinstance(code, int) else None
    if why is not None:
        return StoreUnavailable(message, why)
    return StoreError(message)


class SQLiteStore(
    RecordMethods[sqlite3.Connection],
):
    """The Store on one SQLite file."""

    DIALECT = SQLITE
    _CLEARS_LEAN_COLUMNS = True
    GREATEST = "MAX"
    LAST_SEQ = "SELECT COALESCE(MAX(seq), 0) FROM events"
    HORIZON = None  # one writer, positions in commit order: a commit is readable at once
    EVENT_IDS_MARK = "?"  # a JSON array in a TEXT column
    LOCK_ROW = ""  # writes are serialised: BEGIN IMMEDIATE holds the only write lock
    NODE_NOW = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
    NODE_EXPIRED = f"heartbeat < {NODE_NOW} - ? * 1000"

    def __init__(self, url: str, synchronous: str = "FULL", retention_days: float = 30.0) -> None:
        super().__init__()
        self.maintenance: Maintenance = self  # the schema and upkeep are the backend's own
        self.path = sqlite_path(url)
        self.default_retention_days = retention_days
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._synchronous = synchronous
        self._write_lock = threading.Lock()
        # device_keys rows written by committed transactions (rows are never deleted): a
        # batch writes only the keys not among them. Changed only under the write lock, and
        # forgotten with any transaction that rolls back, so a key is never taken as written
        # when its row was not.
        self._known_keys: set[DeviceKey] = set()
        self._idle_readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._writer = self._connect()

    # -- connections ----------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=BUSY_TIMEOUT_SECONDS,
            )
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
            # Checkpoint every ~40 MB of WAL rather than 4 MB: an index page that many batches
            # touch is copied into the database once per checkpoint, not once per batch.
            conn.execute(f"PRAGMA wal_autocheckpoint = {_CHECKPOINT_PAGES}")
            conn.execute(f"PRAGMA journal_size_limit = {_WAL_LIMIT_BYTES}")
            conn.create_function("record_field", 3, self._record_field, deterministic=True)
        except sqlite3.Error as exc:
            raise _translate(exc) from exc
        with self._connections_lock:
            self._connections.append(conn)
        return conn

    def _borrow_reader(self) -> sqlite3.Connection:
        """An idle reader connection, or a new one when every reader is busy.

        Readers are pooled, not kept per thread: the API's worker threads come and go, and a
        connection per thread ever seen would keep its page cache forever.
        """
        try:
            return self._idle_readers.get_nowait()
        except queue.Empty:
            return self._connect()

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """The writer connection inside ``BEGIN IMMEDIATE ... COMMIT``; not ``durable``, the
        commit runs with ``synchronous = NORMAL`` (in WAL mode: no fsync)."""
        with self._write_lock, self._synchronous_level(durable):
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _translate(exc) from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                self._known_keys.clear()
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise _translate(exc) from exc
                raise

    @contextmanager
    def _synchronous_level(self, durable: bool) -> Iterator[None]:
        """The writer's configured ``synchronous``, or NORMAL for a commit not ``durable``."""
        if durable:
            yield
            return
        try:
            self._writer.execute("PRAGMA synchronous = NORMAL")
            yield
        finally:
            self._writer.execute(f"PRAGMA synchronous = {self._synchronous}")

    def read(self, work: Callable[[sqlite3.Connection], T], time_limit: float | None = None) -> T:
        conn = self._borrow_reader()
        if time_limit is not None:
            deadline = time.monotonic() + time_limit
            conn.set_progress_handler(lambda: time.monotonic() > deadline, _CLOCK_STEPS)
        try:
            return work(conn)
        except sqlite3.Error as exc:
            if time_limit is not None and getattr(exc, "sqlite_errorcode", None) == _INTERRUPTED:
                raise QueryTimeout(time_limit) from exc
            raise _translate(exc) from exc
        finally:
            if time_limit is not None:
                conn.set_progress_handler(None, 0)
            self._give_back(conn)

    def _give_back(self, conn: sqlite3.Connection) -> None:
        """Keep a reader for the next call, or close it when enough are idle already."""
        if self._idle_readers.qsize() < _IDLE_READERS:
            self._idle_readers.put(conn)
            return
        with self._connections_lock:
            if conn in self._connections:
                self._connections.remove(conn)
        conn.close()

    def close(self) -> None:
        self.nodes.release()
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
                # Foreign keys off (only possible outside a transaction), as SQLite's way to
                # rebuild a table asks: dropping a referenced table must not cascade.
                conn.execute("PRAGMA foreign_keys = OFF")
                try:
                    conn.executescript(f"BEGIN IMMEDIATE;\n{migration.sql}\n{record}")
                    if broken := conn.execute("PRAGMA foreign_key_check").fetchall():
                        raise StoreError(f"{migration.name} breaks foreign keys: {broken[:3]}")
                    conn.execute("COMMIT")
                except BaseException as exc:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    if isinstance(exc, sqlite3.Error):
                        raise _translate(exc) from exc
                    raise
                finally:
                    conn.execute("PRAGMA foreign_keys = ON")
        self._ensure_dictionary()
        self.handlers.upgrade_filters()

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

        return self.read(versions)

    def partitions(self) -> list[str]:
        """None: SQLite keeps the log in one table."""
        return []

    # -- events ---------------------------------------------------------------
    def append(self, events: Sequence[NewEvent], ids: Sequence[int]) -> list[bytes]:
        self.before_insert(events)
        with self.transaction() as conn:
            return self.insert_events(conn, events, ids)

    def insert_events(
        self, conn: sqlite3.Connection, events: Sequence[NewEvent], ids: Sequence[int]
    ) -> list[bytes]:
        bodies = [stored_body(event, event_id) for event, event_id in zip(events, ids, strict=True)]
        keyed = [i for i, event in enumerate(events) if event.external_id is not None]
        stored = self._stored_by_external_id(conn, [events[i] for i in keyed])
        codec = self._codec()
        rows = []
        for index, (event, event_id) in enumerate(zip(events, ids, strict=True)):
            offer_gil(index)  # other requests' threads get their turns during a big batch
            if event.external_id is not None:
                key = (event.organisation_id, event.provider, event.external_id)
                if key in stored:
                    bodies[index] = stored[key]
                    continue
                stored[key] = bodies[index]  # a repeat within the batch is stored once
            packed = codec.pack(bodies[index])
            rows.append(event_row(event, event_id, packed, codec.newest, lean=True))
        conn.executemany(_INSERT_EVENT, rows)
        conn.executemany(rollup.UPSERT, rollup.deltas(rows))
        self._insert_new_device_keys(conn, device_keys(events))
        return bodies

    def _insert_new_device_keys(self, conn: sqlite3.Connection, rows: Sequence[DeviceKey]) -> None:
        """Add the rows not written before (``_known_keys``) to ``device_keys`` (appends;
        maintenance, which may meet rows deleted since, writes them all)."""
        known = self._known_keys
        fresh = [row for row in rows if row not in known]
        self.insert_device_keys(conn, fresh)
        if len(known) + len(fresh) > _KNOWN_DEVICE_KEYS:
            known.clear()  # the fleet outgrew it: start again (a row written twice is left)
        known.update(fresh)

    def _stored_by_external_id(
        self, conn: sqlite3.Connection, events: Sequence[NewEvent]
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
                    "SELECT external_id, dictionary_id, body FROM events "
                    "WHERE organisation_id = ? AND provider = ? "
                    f"AND external_id IN ({', '.join('?' * len(chunk))})",
                    (organisation_id, provider, *chunk),
                )
                for external_id, dictionary_id, body in rows:
                    found[(organisation_id, provider, external_id)] = self.served(
                        dictionary_id, body
                    )
        return found

    def read_log(
        self, after_seq: int, limit: int, organisation_ids: tuple[int, ...] | None = None
    ) -> list[LogEntry]:
        sql = f"SELECT {LOG_COLUMNS} FROM events WHERE seq > ?"
        params: list[object] = [after_seq]
        if organisation_ids is not None:  # "+": walk the log by seq, not a tenant's history
            sql += f" AND +organisation_id IN ({', '.join('?' * len(organisation_ids))})"
            params.extend(organisation_ids)
        sql += " ORDER BY seq LIMIT ?"
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
        marks = ", ".join("?" * len(organisation_ids))
        condition, params = (f" AND {matching.sql}", matching.params) if matching else ("", [])

        def run(conn: sqlite3.Connection) -> tuple[list[Any], int | None, int]:
            # Seqs are distinct integers: (after, after + scan_rows] holds scan_rows rows at
            # most. A row's seq is the largest + 1 when it is written, so none appears later
            # below the window's end: the two statements need no common snapshot.
            end = conn.execute("SELECT MAX(seq) FROM events").fetchone()[0] or 0
            window = after_seq + scan_rows if after_seq + scan_rows < end else None
            if upto_seq is not None and (window is None or window > upto_seq):
                window = upto_seq
            sql = (
                f"SELECT {LOG_COLUMNS} FROM events "
                f"WHERE seq > ?{'' if window is None else ' AND seq <= ?'} "
                f"AND +organisation_id IN ({marks}){condition} ORDER BY seq LIMIT ?"
            )
            bounds = [after_seq] if window is None else [after_seq, window]
            values = [*bounds, *organisation_ids, *params, limit]
            return conn.execute(sql, values).fetchall(), window, end if matching else 0

        rows, window, end = self.read(run)
        return log_scan(self._log_entries(rows), after_seq, limit, window, upto_seq, end)

    def last_seq(self) -> int:
        row = self.read(lambda c: c.execute("SELECT MAX(seq) FROM events").fetchone())
        return int(row[0] or 0)

    def purge(self, now: int | None = None, chunk: int = 10_000) -> int:
        """Delete the events older than their organisation's retention, but never the newest
        row of the log: SQLite gives the next row the largest seq + 1, so deleting it would
        give its position again, past some handler's cursor (it goes with a later purge)."""
        deleted = 0
        for cutoff, organisation_ids in self.retention_cutoffs(
            now_ms() if now is None else now
        ).items():
            for ids in self.in_chunks(organisation_ids):  # each by its index (org, ts)
                deleted += self._delete_older(cutoff, ids, chunk)
        return deleted

    def _delete_older(self, cutoff: int, organisation_ids: list[int], chunk: int) -> int:
        """Delete the events older than ``cutoff`` of ``organisation_ids``, with their
        counts, a chunk at a time."""
        marks = ", ".join("?" * len(organisation_ids))
        deleted = 0
        while True:
            with self.transaction() as conn:
                doomed = conn.execute(
                    f"SELECT seq, {', '.join(rollup.COUNTED)} FROM events "
                    f"WHERE ts < ? AND organisation_id IN ({marks}) "
                    "AND seq < (SELECT MAX(seq) FROM events) LIMIT ?",
                    (cutoff, *organisation_ids, chunk),
                ).fetchall()
                conn.executemany(
                    rollup.UPSERT, rollup.deltas((r[1:] for r in doomed), -1, rollup.COUNTED)
                )
                conn.execute(rollup.DROP_EMPTY)
                count = conn.executemany(
                    "DELETE FROM events WHERE seq = ?", [(r[0],) for r in doomed]
                ).rowcount
            deleted += count
            if count < chunk:
                return deleted

    # -- shared methods' hooks ------------------------------------------------
    def event_ids_param(self, event_ids: tuple[int, ...]) -> object:
        return orjson.dumps(event_ids).decode()

    def event_ids(self, value: Any) -> tuple[int, ...]:
        return tuple(orjson.loads(value))

    # -- event handlers -------------------------------------------------------
    def claim_handler_rows(self, owner: str, now_ms: int, lease_ms: int, columns: str) -> list[Any]:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE handlers SET owner = ?, lease_until_ms = ? WHERE enabled "
                "AND (owner IS NULL OR owner = ? OR lease_until_ms < ?)",
                (owner, now_ms + lease_ms, owner, now_ms),
            )
            return conn.execute(
                f"SELECT {columns} FROM handlers WHERE enabled AND owner = ?", (owner,)
            ).fetchall()
