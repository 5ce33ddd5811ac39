"""The Store methods the SQL backends share: organisations, tokens, meta, event handlers,
deliveries and replays.

They are written once, with ``?`` placeholders, against a small interface each backend
provides: the connection helpers ``_read`` and ``_transaction``, ``_write`` (one write
statement), ``_sql`` (the driver's placeholders) and a few dialect hooks. The event log
(append, query, purge), the schema, ``claim_handlers`` and node leases stay in the backends.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import orjson

from herald.catalog import load_catalog
from herald.handlers.filters import from_legacy
from herald.handlers.types import Delivery, Handler, HandlerProgress, HandlerSpec, Replay
from herald.ids import draw_public_ids, next_public_id, public_id_bounds, public_id_ms
from herald.organisations.types import Organisation, Token
from herald.query.filter import EventFilter
from herald.record import NewEvent
from herald.retention import retention_days, window_start_ms
from herald.store.errors import LimitReached, NotFound, StoreError, StoreUnavailable
from herald.store.nodes import LEASE_SECONDS, MAX_NODE, NodeLease, holder_name
from herald.store.sql import Dialect, Where, where_clause
from herald.timefmt import now_ms

log = logging.getLogger("herald.store")
T = TypeVar("T")

ORGANISATION_COLUMNS = (
    "id, name, created_ms, retention_days, device_events, events_per_second, event_burst, "
    "bytes_per_day"
)
TOKEN_COLUMNS = "id, organisation_id, name, prefix, permissions, internal, created_ms, revoked_ms"
HANDLER_COLUMNS = (
    "id, organisation_id, name, type, url, format, filter, batch_max_events, "
    "batch_max_wait_ms, retention_ms, enabled, disabled_reason, secret, previous_secret, "
    "previous_secret_until_ms, cursor_seq, failures, failing_since_ms, next_attempt_ms, "
    "last_success_ms, last_error, owner, lease_until_ms, created_ms, updated_ms, "
    "settings, credentials, batch_max_bytes"
)
SELECT_HANDLER = f"SELECT {HANDLER_COLUMNS} FROM handlers"


class Cursor(Protocol):
    """What the shared methods use of a cursor (sqlite3's and psycopg's alike)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """What the shared methods use of a connection (sqlite3's and psycopg's alike)."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Cursor: ...


C = TypeVar("C", bound=Connection)


class SQLStoreBase(ABC, Generic[C]):
    """The backend-independent part of a SQL Store, on connections of type ``C``."""

    _GREATEST: ClassVar[str]
    """The SQL function that returns the larger of two values."""
    _LAST_SEQ: ClassVar[str]
    """A query for the log position a new event handler starts after."""
    _EVENT_IDS_MARK: ClassVar[str]
    """The placeholder of a delivery's event ids (with any cast the column needs)."""

    _DIALECT: ClassVar[Dialect]
    """How the backend's driver writes a filter's SQL (store/sql.py)."""
    _LOCK_ROW: ClassVar[str]
    """What makes a ``SELECT`` lock the rows it reads until the transaction ends."""

    _NODE_NOW: ClassVar[str]
    """The SQL expression of the time a node lease's heartbeat is stamped with."""
    _NODE_EXPIRED: ClassVar[str]
    """The SQL condition of a node lease not renewed for ``?`` seconds."""

    default_retention_days: float = 30.0
    _node: NodeLease | None = None
    _node_holder: str = ""

    # -- the backend's interface ----------------------------------------------
    def _unpack(self, dictionary_id: int, data: bytes) -> bytes:
        """A stored record as served (``store.records.RecordMethods`` decompresses)."""
        raise NotImplementedError

    def _served(self, dictionary_id: int, data: bytes) -> bytes:
        """An event row's record as served, null keys filled (``RecordMethods``)."""
        raise NotImplementedError

    @abstractmethod
    def _read(self, work: Callable[[C], T], time_limit: float | None = None) -> T:
        """Run ``work`` on a connection outside any explicit transaction.

        With a ``time_limit`` (seconds), the database stops ``work``'s statements once it has
        passed and QueryTimeout is raised: one tenant's scan cannot hold a connection long.
        """

    @abstractmethod
    def _transaction(self, durable: bool = True) -> AbstractContextManager[C]:
        """A connection inside a transaction: committed on exit, rolled back on error.

        ``durable=False`` commits without waiting for the disk: a crash of the process loses
        nothing, one of the machine may undo the last such commits (delivery bookkeeping,
        where that only means delivering again).
        """

    @abstractmethod
    def _event_ids_param(self, event_ids: tuple[int, ...]) -> object:
        """A delivery's event ids as the ``deliveries.event_ids`` column takes them."""

    @abstractmethod
    def _event_ids(self, value: Any) -> tuple[int, ...]:
        """A delivery's event ids from the ``deliveries.event_ids`` column."""

    @abstractmethod
    def _insert_events(
        self, conn: C, events: Sequence[NewEvent], ids: Sequence[int]
    ) -> list[bytes]:
        """``append``'s work inside a transaction already open on ``conn``."""

    def _before_insert(self, events: Sequence[NewEvent]) -> None:
        """Check, outside any transaction, that ``events`` may be inserted: not by a process
        that lost its node id (StoreUnavailable)."""
        self._refuse_lost_writer()

    def _write(self, work: Callable[[C], T]) -> T:
        """Run ``work``, one write statement, as a transaction of its own."""
        with self._transaction() as conn:
            return work(conn)

    def _sql(self, sql: str) -> str:
        """``sql``, written with ``?`` placeholders, in the driver's parameter style."""
        return sql

    def _any(self, column: str, values: tuple[int, ...]) -> tuple[str, list[object]]:
        """A condition and its parameters: ``column`` is one of ``values`` (none: false)."""
        marks = ", ".join("?" * len(values)) or "NULL"
        return f"{column} IN ({marks})", list(values)

    def _after_chosen_organisation_id(self, conn: C) -> None:
        """Keep generated organisation ids ahead of one chosen by hand (nothing to do)."""

    def _execute(self, conn: C, sql: str, params: Sequence[object] = ()) -> Cursor:
        return conn.execute(self._sql(sql), params)

    def maintain(self) -> None:
        """Nothing to prepare ahead of time (PostgreSQL creates partitions)."""

    def _lock_nodes(self, conn: C) -> None:
        """Serialise node leasing among processes (SQLite's one writer does already)."""

    def _lock_ids(self, conn: C, table: str, ms: int) -> None:
        """Serialise the choice of ``table``'s new ids in millisecond ``ms`` until the
        transaction ends (SQLite's one writer does already)."""

    def _new_ids(self, conn: C, table: str, count: int, unix_ms: int) -> list[int]:
        """``count`` ids, increasing, for new rows of ``table`` (``handlers``,
        ``rejected_records``, ``tokens``) made at ``unix_ms``: random free slots of that
        millisecond (``herald.ids.draw_public_ids``), or of the next ones when it is full."""
        ids: list[int] = []
        ms = public_id_ms(unix_ms)
        while len(ids) < count:
            self._lock_ids(conn, table, ms)
            low, high = public_id_bounds(ms)
            sql = f"SELECT id FROM {table} WHERE id BETWEEN ? AND ?"
            taken = [int(row[0]) for row in self._execute(conn, sql, (low, high)).fetchall()]
            ids += draw_public_ids(ms, taken, count - len(ids))
            ms += 1
        return ids

    def _insert_next(
        self, conn: C, table: str, handler_id: int, insert: str, params: Sequence[object]
    ) -> int:
        """Run ``insert`` (a row of ``table``: ``deliveries``, ``replays``; its first
        parameter the id) with a new id and return the id: the handler's next, a random slot
        of this millisecond above the handler's last id (``herald.ids.next_public_id``), so
        the handler's rows keep their order and their ids tell nothing of other
        organisations'. The caller holds the handler's row lock; no other lock is taken,
        nor other rows read: where another row has the id, it is drawn again, higher."""
        sql = f"SELECT MAX(id) FROM {table} WHERE handler_id = ?"  # (handler_id, id) index
        last = self._execute(conn, sql, (handler_id,)).fetchone()
        after: int | None = None if last is None or last[0] is None else int(last[0])
        ms = public_id_ms(now_ms())
        while True:
            new_id = next_public_id(ms, after)
            row = self._execute(
                conn, f"{insert} ON CONFLICT DO NOTHING RETURNING id", (new_id, *params)
            ).fetchone()
            if row is not None:
                return new_id
            after = new_id

    # -- node ids -------------------------------------------------------------
    def lease_node_id(self, preferred: int | None = None) -> int:
        if self._node is not None:
            return self._node.node_id
        holder = holder_name()
        started = time.monotonic()
        with self._transaction() as conn:
            self._lock_nodes(conn)
            self._execute(conn, f"DELETE FROM nodes WHERE {self._NODE_EXPIRED}", (LEASE_SECONDS,))
            rows = self._execute(conn, "SELECT node_id, holder FROM nodes").fetchall()
            taken = {row[0]: row[1] for row in rows}
            if preferred is not None and preferred in taken:
                raise StoreUnavailable(f"node id {preferred} is leased by {taken[preferred]}")
            free = (n for n in range(MAX_NODE + 1) if n not in taken)
            node_id = preferred if preferred is not None else next(free, None)
            if node_id is None:
                raise StoreUnavailable("all 1024 node ids are leased by live processes")
            self._execute(
                conn,
                f"INSERT INTO nodes VALUES (?, ?, {self._NODE_NOW})",
                (node_id, holder),
            )
        self._node_holder = holder
        self._node = NodeLease(node_id, lambda: self._hold_node(node_id, holder), started)
        return node_id

    def _hold_node(self, node_id: int, holder: str) -> bool:
        """Renew the lease, or take the id again if nobody took it meanwhile."""
        with self._transaction() as conn:
            renewed = self._execute(
                conn,
                f"UPDATE nodes SET heartbeat = {self._NODE_NOW} WHERE node_id = ? AND holder = ?",
                (node_id, holder),
            ).rowcount
            if renewed:
                return True
            return bool(
                self._execute(
                    conn,
                    f"INSERT INTO nodes VALUES (?, ?, {self._NODE_NOW}) ON CONFLICT DO NOTHING",
                    (node_id, holder),
                ).rowcount
            )

    def renew_node_lease(self) -> bool:
        """Renew this process's node id lease now; False if it is lost (or none is held)."""
        return self._node.renew() if self._node is not None else False

    def write_refusal(self) -> str | None:
        return self._node.refusal() if self._node is not None else None

    def _refuse_lost_writer(self) -> None:
        """Raise StoreUnavailable if this process must not append events now."""
        if (reason := self.write_refusal()) is not None:
            raise StoreUnavailable(reason)

    def _release_node(self) -> None:
        """Stop the heartbeat and give the node id back (on close)."""
        if self._node is None:
            return
        self._node.stop()
        node_id, self._node = self._node.node_id, None
        try:
            self._write(
                lambda c: self._execute(
                    c,
                    "DELETE FROM nodes WHERE node_id = ? AND holder = ?",
                    (node_id, self._node_holder),
                )
            )
        except StoreError:
            log.warning("could not release node id %d; it expires on its own", node_id)

    # -- organisations --------------------------------------------------------
    def create_organisation(
        self, name: str, organisation_id: int | None = None, retention_days: int | None = None
    ) -> Organisation:
        created = now_ms()
        with self._transaction() as conn:
            if organisation_id is None:
                row = self._execute(
                    conn,
                    "INSERT INTO organisations (name, created_ms, retention_days) "
                    "VALUES (?, ?, ?) RETURNING id",
                    (name, created, retention_days),
                ).fetchone()
            else:
                row = self._execute(
                    conn,
                    "INSERT INTO organisations (id, name, created_ms, retention_days) "
                    "VALUES (?, ?, ?, ?) RETURNING id",
                    (organisation_id, name, created, retention_days),
                ).fetchone()
                self._after_chosen_organisation_id(conn)
        return Organisation(row[0], name, created, retention_days)

    def get_organisation(self, organisation_id: int) -> Organisation | None:
        row = self._read(
            lambda c: self._execute(
                c,
                f"SELECT {ORGANISATION_COLUMNS} FROM organisations WHERE id = ?",
                (organisation_id,),
            ).fetchone()
        )
        return _organisation(row) if row else None

    def list_organisations(self) -> list[Organisation]:
        rows = self._read(
            lambda c: self._execute(
                c, f"SELECT {ORGANISATION_COLUMNS} FROM organisations ORDER BY id"
            ).fetchall()
        )
        return [_organisation(row) for row in rows]

    def set_retention(self, organisation_id: int, retention_days: int | None) -> Organisation:
        row = self._write(
            lambda c: self._execute(
                c,
                "UPDATE organisations SET retention_days = ? WHERE id = ? "
                f"RETURNING {ORGANISATION_COLUMNS}",
                (retention_days, organisation_id),
            ).fetchone()
        )
        if row is None:
            raise NotFound(f"no organisation {organisation_id}")
        return _organisation(row)

    def set_device_events(self, organisation_id: int, enabled: bool) -> Organisation:
        row = self._write(
            lambda c: self._execute(
                c,
                "UPDATE organisations SET device_events = ? WHERE id = ? "
                f"RETURNING {ORGANISATION_COLUMNS}",
                (enabled, organisation_id),
            ).fetchone()
        )
        if row is None:
            raise NotFound(f"no organisation {organisation_id}")
        return _organisation(row)

    def set_event_budget(
        self,
        organisation_id: int,
        events_per_second: float | None,
        event_burst: int | None,
        bytes_per_day: int | None,
    ) -> Organisation:
        row = self._write(
            lambda c: self._execute(
                c,
                "UPDATE organisations SET events_per_second = ?, event_burst = ?, "
                f"bytes_per_day = ? WHERE id = ? RETURNING {ORGANISATION_COLUMNS}",
                (events_per_second, event_burst, bytes_per_day, organisation_id),
            ).fetchone()
        )
        if row is None:
            raise NotFound(f"no organisation {organisation_id}")
        return _organisation(row)

    def _retention_cutoffs(self, now: int) -> dict[int, list[int]]:
        """Each cutoff (an organisation's events older than it go) -> its organisations, in
        groups of at most 500; the default cutoff is always there, if only with none."""
        default = window_start_ms(now, self.default_retention_days)
        groups: dict[int, list[int]] = {default: []}
        for organisation in self.list_organisations():
            days = retention_days(organisation.retention_days, self.default_retention_days)
            groups.setdefault(window_start_ms(now, days), []).append(organisation.id)
        return groups

    @staticmethod
    def _in_chunks(ids: list[int], size: int = 500) -> list[list[int]]:
        return [ids[start : start + size] for start in range(0, len(ids), size)]

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
            (token_id,) = self._new_ids(conn, "tokens", 1, created)
            self._execute(
                conn,
                "INSERT INTO tokens (id, organisation_id, name, token_hash, prefix, "
                "permissions, internal, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    token_id,
                    organisation_id,
                    name,
                    token_hash,
                    prefix,
                    orjson.dumps(list(permissions)).decode(),
                    internal,
                    created,
                ),
            )
        return Token(
            token_id, organisation_id, name, prefix, tuple(permissions), internal, created, None
        )

    def find_token(self, token_hash: str) -> Token | None:
        return self._one_token("token_hash", token_hash)

    def get_token(self, token_id: int) -> Token | None:
        return self._one_token("id", token_id)

    def _one_token(self, column: str, value: object) -> Token | None:
        row = self._read(
            lambda c: self._execute(
                c, f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE {column} = ?", (value,)
            ).fetchone()
        )
        return _token(row) if row else None

    def list_tokens(self, organisation_id: int | None = None) -> list[Token]:
        sql = f"SELECT {TOKEN_COLUMNS} FROM tokens"
        params: tuple[object, ...] = ()
        if organisation_id is not None:
            sql += " WHERE organisation_id = ?"
            params = (organisation_id,)
        rows = self._read(lambda c: self._execute(c, sql + " ORDER BY id", params).fetchall())
        return [_token(row) for row in rows]

    def revoke_token(self, token_id: int) -> Token:
        row = self._write(
            lambda c: self._execute(
                c,
                "UPDATE tokens SET revoked_ms = COALESCE(revoked_ms, ?) WHERE id = ? "
                f"RETURNING {TOKEN_COLUMNS}",
                (now_ms(), token_id),
            ).fetchone()
        )
        if row is None:
            raise NotFound(f"no token {token_id}")
        return _token(row)

    def count_tokens(self) -> int:
        row = self._read(lambda c: self._execute(c, "SELECT COUNT(*) FROM tokens").fetchone())
        return int(row[0]) if row else 0

    # -- meta -----------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._read(
            lambda c: self._execute(c, "SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        )
        return str(row[0]) if row else None

    def set_meta_if_absent(self, key: str, value: str) -> str:
        with self._transaction() as conn:
            self._execute(
                conn,
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (key, value),
            )
            row = self._execute(conn, "SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0])

    # -- event handlers -------------------------------------------------------
    def create_handler(
        self,
        organisation_id: int,
        spec: HandlerSpec,
        secret: str,
        max_handlers: int | None = None,
    ) -> Handler:
        created = now_ms()
        with self._transaction() as conn:
            if max_handlers is not None:  # counted under the organisation's lock: no race
                self._execute(
                    conn,
                    f"SELECT id FROM organisations WHERE id = ?{self._LOCK_ROW}",
                    (organisation_id,),
                ).fetchone()
                count = self._execute(
                    conn,
                    "SELECT COUNT(*) FROM handlers WHERE organisation_id = ?",
                    (organisation_id,),
                ).fetchone()
                if count is not None and int(count[0]) >= max_handlers:
                    raise LimitReached(
                        f"the organisation has {int(count[0])} event handlers, the most it "
                        f"may have (HERALD_MAX_HANDLERS_PER_ORGANISATION={max_handlers}); "
                        "delete one first"
                    )
            (handler_id,) = self._new_ids(conn, "handlers", 1, created)
            row = self._execute(
                conn,
                "INSERT INTO handlers (id, organisation_id, name, type, url, format, filter, "
                "batch_max_events, batch_max_wait_ms, batch_max_bytes, retention_ms, settings, "
                "credentials, enabled, disabled_reason, secret, cursor_seq, created_ms, "
                "updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                f"({self._LAST_SEQ}), ?, ?) RETURNING {HANDLER_COLUMNS}",
                (
                    handler_id,
                    organisation_id,
                    *_spec_values(spec),
                    None if spec.enabled else "disabled by the user",
                    secret,
                    created,
                    created,
                ),
            ).fetchone()
        return handler_from_row(row)

    def get_handler(
        self, handler_id: int, organisation_ids: tuple[int, ...] | None = None
    ) -> Handler | None:
        sql, params = self._scoped(SELECT_HANDLER + " WHERE id = ?", [handler_id], organisation_ids)
        row = self._read(lambda c: self._execute(c, sql, params).fetchone())
        return handler_from_row(row) if row else None

    def list_handlers(self, organisation_ids: tuple[int, ...] | None = None) -> list[Handler]:
        sql, params = self._scoped(SELECT_HANDLER + " WHERE TRUE", [], organisation_ids)
        rows = self._read(lambda c: self._execute(c, sql + " ORDER BY id", params).fetchall())
        return [handler_from_row(row) for row in rows]

    def update_handler(
        self, handler_id: int, organisation_ids: tuple[int, ...] | None, spec: HandlerSpec
    ) -> Handler:
        enable = spec.enabled
        sql, params = self._scoped(
            "UPDATE handlers SET name = ?, type = ?, url = ?, format = ?, filter = ?, "
            "batch_max_events = ?, batch_max_wait_ms = ?, batch_max_bytes = ?, retention_ms = ?, "
            "settings = ?, credentials = ?, disabled_reason = CASE WHEN ? THEN NULL "
            "  WHEN enabled THEN 'disabled by the user' ELSE disabled_reason END, "
            "failures = CASE WHEN ? AND NOT enabled THEN 0 ELSE failures END, "
            "failing_since_ms = CASE WHEN ? AND NOT enabled THEN NULL ELSE failing_since_ms END, "
            "next_attempt_ms = CASE WHEN ? AND NOT enabled THEN NULL ELSE next_attempt_ms END, "
            "enabled = ?, updated_ms = ? WHERE id = ?",
            [
                *_spec_values(spec)[:-1],  # all but enabled, set last
                enable,
                enable,
                enable,
                enable,
                enable,
                now_ms(),
                handler_id,
            ],
            organisation_ids,
        )
        return self._update_handler(sql, params, handler_id)

    def delete_handler(self, handler_id: int, organisation_ids: tuple[int, ...] | None) -> None:
        sql, params = self._scoped(
            "DELETE FROM handlers WHERE id = ?", [handler_id], organisation_ids
        )
        if self._write(lambda c: self._execute(c, sql, params).rowcount) == 0:
            raise NotFound(f"no event handler {handler_id}")

    def rotate_handler_secret(
        self,
        handler_id: int,
        organisation_ids: tuple[int, ...] | None,
        secret: str,
        previous_until_ms: int,
    ) -> Handler:
        sql, params = self._scoped(
            "UPDATE handlers SET previous_secret = secret, previous_secret_until_ms = ?, "
            "secret = ?, updated_ms = ? WHERE id = ?",
            [previous_until_ms, secret, now_ms(), handler_id],
            organisation_ids,
        )
        return self._update_handler(sql, params, handler_id)

    def reseal_handler_secrets(self, reseal: Callable[[str], str | None]) -> int:
        rows = self._read(
            lambda c: self._execute(
                c, "SELECT id, secret, previous_secret, credentials FROM handlers ORDER BY id"
            ).fetchall()
        )
        changed = 0
        for handler_id, secret, previous, credentials in rows:
            new_secret = reseal(secret)
            new_previous = reseal(previous) if previous else None
            new_credentials = reseal(credentials) if credentials else None
            if new_secret is None and new_previous is None and new_credentials is None:
                continue
            # Only if unchanged since the read: a rotation meanwhile wins (and is sealed).
            with self._transaction() as conn:
                changed += self._execute(
                    conn,
                    "UPDATE handlers SET secret = ?, previous_secret = ?, credentials = ? "
                    "WHERE id = ? AND secret = ? AND COALESCE(previous_secret, '') = ? "
                    "AND COALESCE(credentials, '') = ?",
                    (
                        new_secret or secret,
                        new_previous or previous,
                        new_credentials or credentials,
                        handler_id,
                        secret,
                        previous or "",
                        credentials or "",
                    ),
                ).rowcount
        return changed

    def _update_handler(self, sql: str, params: list[object], handler_id: int) -> Handler:
        row = self._write(
            lambda c: self._execute(c, f"{sql} RETURNING {HANDLER_COLUMNS}", params).fetchone()
        )
        if row is None:
            raise NotFound(f"no event handler {handler_id}")
        return handler_from_row(row)

    def _scoped(
        self, sql: str, params: list[object], organisation_ids: tuple[int, ...] | None
    ) -> tuple[str, list[object]]:
        """Narrow a statement on handlers to the caller's organisations (None: all)."""
        if organisation_ids is None:
            return sql, params
        condition, values = self._any("organisation_id", organisation_ids)
        return f"{sql} AND {condition}", [*params, *values]

    def upgrade_handler_filters(self) -> int:
        """Rewrite handler filters kept in the shape before the ``q`` form; how many."""
        rows = self._read(
            lambda c: self._execute(
                c, "SELECT id, filter FROM handlers WHERE filter NOT LIKE '\"%'"
            ).fetchall()
        )
        if rows:  # a read-only database with nothing to rewrite still opens
            catalog = load_catalog()
            with self._transaction() as conn:
                for handler_id, kept in rows:
                    text = orjson.dumps(from_legacy(orjson.loads(kept), catalog)).decode()
                    self._execute(
                        conn, "UPDATE handlers SET filter = ? WHERE id = ?", (text, handler_id)
                    )
        return len(rows)

    def claimable_handler_ids(self, owner: str, now_ms: int) -> list[int]:
        rows = self._read(
            lambda c: self._execute(
                c,
                "SELECT id FROM handlers WHERE enabled "
                "AND (owner IS NULL OR owner = ? OR lease_until_ms < ?) ORDER BY id",
                (owner, now_ms),
            ).fetchall()
        )
        return [row[0] for row in rows]

    def release_handlers(self, owner: str) -> None:
        self._write(
            lambda c: self._execute(
                c,
                "UPDATE handlers SET owner = NULL, lease_until_ms = NULL WHERE owner = ?",
                (owner,),
            )
        )

    # -- deliveries and replays -----------------------------------------------
    def record_delivery(
        self,
        owner: str,
        delivery: Delivery,
        progress: HandlerProgress | None,
        replay_cursor: tuple[int, int] | None = None,
        notice: tuple[NewEvent, int] | None = None,
    ) -> Handler | None:
        if notice is not None:
            self._before_insert([notice[0]])
        with self._transaction(durable=notice is not None) as conn:
            if progress is None:
                row = self._execute(  # locked: the handler's attempts take ids in turn
                    conn,
                    f"{SELECT_HANDLER} WHERE id = ? AND organisation_id = ?{self._LOCK_ROW}",
                    (delivery.handler_id, delivery.organisation_id),
                )
            else:
                row = self._execute(
                    conn,
                    "UPDATE handlers SET cursor_seq = ?, failures = ?, failing_since_ms = ?, "
                    "next_attempt_ms = ?, last_success_ms = COALESCE(?, last_success_ms), "
                    "last_error = ?, enabled = enabled AND CAST(? AS TEXT) IS NULL, "
                    "disabled_reason = COALESCE(?, disabled_reason), updated_ms = ? "
                    "WHERE id = ? AND organisation_id = ? AND owner = ? "
                    f"RETURNING {HANDLER_COLUMNS}",
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
                        delivery.organisation_id,
                        owner,
                    ),
                )
            handler = row.fetchone()
            if handler is None:  # deleted (or not the organisation's): write nothing
                return None
            if replay_cursor is not None:
                self._move_replay(conn, *replay_cursor, delivery.handler_id)
            if notice is not None and progress is not None:
                self._insert_events(conn, [notice[0]], [notice[1]])
            self._insert_next(
                conn,
                "deliveries",
                delivery.handler_id,
                "INSERT INTO deliveries (id, organisation_id, handler_id, at_ms, kind, "
                "event_ids, status, outcome, error, latency_ms) "
                f"VALUES (?, ?, ?, ?, ?, {self._EVENT_IDS_MARK}, ?, ?, ?, ?)",
                (
                    delivery.organisation_id,
                    delivery.handler_id,
                    delivery.at_ms,
                    delivery.kind,
                    self._event_ids_param(delivery.event_ids),
                    delivery.status,
                    delivery.outcome,
                    delivery.error,
                    delivery.latency_ms,
                ),
            )
        return handler_from_row(handler)

    def advance_cursor(
        self, handler_id: int, owner: str, cursor_seq: int, organisation_id: int
    ) -> Handler | None:
        with self._transaction(durable=False) as conn:
            row = self._execute(
                conn,
                f"UPDATE handlers SET cursor_seq = {self._GREATEST}(cursor_seq, ?) "
                "WHERE id = ? AND organisation_id = ? AND owner = ? "
                f"RETURNING {HANDLER_COLUMNS}",
                (cursor_seq, handler_id, organisation_id, owner),
            ).fetchone()
        return handler_from_row(row) if row else None

    def advance_cursors(self, owner: str, handler_ids: Sequence[int], cursor_seq: int) -> None:
        with self._transaction(durable=False) as conn:
            for start in range(0, len(handler_ids), 500):
                marks, params = self._any("id", tuple(handler_ids[start : start + 500]))
                self._execute(
                    conn,
                    f"UPDATE handlers SET cursor_seq = {self._GREATEST}(cursor_seq, ?) "
                    f"WHERE owner = ? AND {marks}",
                    (cursor_seq, owner, *params),
                )

    def log_activity(self, after_seq: int, upto_seq: int, limit: int) -> dict[int, set[int]] | None:
        rows = self._read(
            lambda c: self._execute(
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

    def list_deliveries(
        self, handler_id: int, before_id: int | None = None, limit: int = 100
    ) -> list[Delivery]:
        sql = (
            "SELECT d.handler_id, h.organisation_id, d.at_ms, d.kind, d.event_ids, d.status, "
            "d.outcome, d.error, d.latency_ms, d.id "
            "FROM deliveries d JOIN handlers h ON h.id = d.handler_id WHERE d.handler_id = ?"
        )
        params: list[object] = [handler_id]
        if before_id is not None:
            sql += " AND d.id < ?"
            params.append(before_id)
        sql += " ORDER BY d.id DESC LIMIT ?"
        params.append(limit)
        rows = self._read(lambda c: self._execute(c, sql, params).fetchall())
        return [
            Delivery(row[0], row[1], row[2], row[3], self._event_ids(row[4]), *row[5:])
            for row in rows
        ]

    def create_replay(self, handler_id: int, from_ms: int, until_ms: int) -> Replay:
        created = now_ms()
        with self._transaction() as conn:
            handler = self._execute(  # locked: the handler's replays take ids in turn
                conn,
                f"SELECT organisation_id FROM handlers WHERE id = ?{self._LOCK_ROW}",
                (handler_id,),
            ).fetchone()
            if handler is None:
                raise NotFound(f"no event handler {handler_id}")
            first, last = self._execute(
                conn,
                "SELECT MIN(seq), MAX(seq) FROM events "
                "WHERE organisation_id = ? AND ts >= ? AND ts <= ?",
                (handler[0], from_ms, until_ms),
            ).fetchone()
            start, end = (first - 1, last) if first is not None else (0, 0)
            done = created if end == 0 else None
            replay_id = self._insert_next(
                conn,
                "replays",
                handler_id,
                "INSERT INTO replays (id, organisation_id, handler_id, from_ms, until_ms, "
                "cursor_seq, end_seq, created_ms, done_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (handler[0], handler_id, from_ms, until_ms, start, end, created, done),
            )
            self._execute(  # a changed handler: the worker's next lease renewal wakes it
                conn, "UPDATE handlers SET updated_ms = ? WHERE id = ?", (created, handler_id)
            )
        return Replay(replay_id, handler_id, from_ms, until_ms, start, end, created, done)

    def pending_replays(self, handler_id: int) -> list[Replay]:
        rows = self._read(
            lambda c: self._execute(
                c,
                "SELECT id, handler_id, from_ms, until_ms, cursor_seq, end_seq, created_ms, "
                "done_ms FROM replays WHERE handler_id = ? AND done_ms IS NULL ORDER BY id",
                (handler_id,),
            ).fetchall()
        )
        return [Replay(*row) for row in rows]

    def advance_replay(
        self, replay_id: int, cursor_seq: int, handler_id: int, organisation_id: int
    ) -> None:
        with self._transaction(durable=False) as conn:
            owned = self._execute(
                conn,
                "SELECT 1 FROM handlers WHERE id = ? AND organisation_id = ?",
                (handler_id, organisation_id),
            ).fetchone()
            if owned is not None:
                self._move_replay(conn, replay_id, cursor_seq, handler_id)

    def _move_replay(self, conn: C, replay_id: int, cursor_seq: int, handler_id: int) -> None:
        self._execute(
            conn,
            f"UPDATE replays SET cursor_seq = {self._GREATEST}(cursor_seq, ?), "
            "done_ms = CASE WHEN ? >= end_seq THEN ? ELSE NULL END "
            "WHERE id = ? AND handler_id = ?",
            (cursor_seq, cursor_seq, now_ms(), replay_id, handler_id),
        )

    def count_log(
        self,
        organisation_id: int,
        after_seq: int,
        flt: EventFilter | None = None,
        limit: int | None = None,
    ) -> int:
        where = self._log_after(organisation_id, after_seq, flt)
        matching = f"SELECT 1 FROM events{where.sql}"
        if limit is not None:
            matching += f" LIMIT {int(limit)}"
        sql = f"SELECT COUNT(*) FROM ({matching}) AS matching"
        row = self._read(lambda c: c.execute(sql, where.params).fetchone())
        return int(row[0]) if row else 0

    def first_in_log(
        self, organisation_id: int, after_seq: int, flt: EventFilter | None = None
    ) -> bytes | None:
        where = self._log_after(organisation_id, after_seq, flt)
        sql = f"SELECT dictionary_id, body FROM events{where.sql} ORDER BY seq LIMIT 1"
        row = self._read(lambda c: c.execute(sql, where.params).fetchone())
        return self._served(row[0], bytes(row[1])) if row else None

    def _log_after(self, organisation_id: int, after_seq: int, flt: EventFilter | None) -> Where:
        """The organisation's events that ``flt`` selects, committed after ``after_seq``."""
        scoped = (flt or EventFilter()).replace(organisation_ids=(organisation_id,))
        where = where_clause(scoped, self._DIALECT)  # never empty: it names the organisation
        return Where(f"{where.sql} AND seq > {self._DIALECT.mark}", [*where.params, after_seq])


def _organisation(row: Sequence[Any]) -> Organisation:
    return Organisation(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6], row[7])


def _token(row: Sequence[Any]) -> Token:
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


def _spec_values(spec: HandlerSpec) -> tuple[object, ...]:
    """The spec's columns: name, type, url, format, filter, batch, retention, the sink's
    settings and sealed credentials, enabled."""
    return (
        spec.name,
        spec.type,
        spec.url,
        spec.format,
        orjson.dumps(spec.filter).decode(),
        spec.batch_max_events,
        spec.batch_max_wait_ms,
        spec.batch_max_bytes,
        spec.retention_ms,
        spec.settings,
        spec.credentials,
        spec.enabled,
    )


def handler_from_row(row: Sequence[Any]) -> Handler:
    """The handler in a row of ``HANDLER_COLUMNS``."""
    spec = HandlerSpec(
        name=row[2],
        type=row[3],
        url=row[4],
        format=row[5],
        filter=orjson.loads(row[6]),  # q text: older shapes are upgraded on open
        batch_max_events=row[7],
        batch_max_wait_ms=row[8],
        retention_ms=row[9],
        enabled=bool(row[10]),
        settings=row[25],
        credentials=row[26],
        batch_max_bytes=row[27],
    )
    return Handler(row[0], row[1], spec, *row[11:25])
