"""The SQL backends' shared base: what a SQL store is made of (its event log and
repositories, built over it) and the connection helpers and dialect hooks they run on.

The repositories are written once, with ``?`` placeholders, against the small interface each
backend provides: the connection helpers ``read`` and ``transaction``, ``write`` (one
write statement), ``sql`` (the driver's placeholders), a few dialect hooks, and the SQL that
really differs: appends (``append``, ``insert_events``), log reads (``read_log``,
``scan_log``, ``last_seq``) and the claim of handlers (``claim_handler_rows``). That
interface is public to the store package (the repositories' side of a backend); outside it,
code reaches the database only through ``Store``'s log and repositories.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Generic, TypeVar, cast

from herald.events.types import LogEntry, LogScan
from herald.ids import draw_public_ids, next_public_id, public_id_bounds, public_id_ms
from herald.record import NewEvent
from herald.retention import retention_days, window_start_ms
from herald.store.dbapi import C, Cursor
from herald.store.devices import Devices
from herald.store.errors import StoreUnavailable
from herald.store.handlers import Handlers
from herald.store.log import EventLog
from herald.store.meta import Meta
from herald.store.nodes import Nodes
from herald.store.organisations import Organisations
from herald.store.quarantine import Quarantine
from herald.store.rules import RuleRepository
from herald.store.sql import INSERT_DEVICE_KEYS, DeviceKey, Dialect, Where
from herald.store.usage import Usage
from herald.timefmt import now_ms

T = TypeVar("T")


class SQLStoreBase(ABC, Generic[C]):
    """A SQL Store on connections of type ``C``: the log and repositories, and what they
    need of the backend."""

    GREATEST: ClassVar[str]
    """The SQL function that returns the larger of two values."""
    LAST_SEQ: ClassVar[str]
    """A query for the log position a new event handler starts after."""
    HORIZON: ClassVar[str | None]
    """A query for the log's ``Horizon`` (None: every commit is readable at once)."""
    EVENT_IDS_MARK: ClassVar[str]
    """The placeholder of a delivery's event ids (with any cast the column needs)."""

    DIALECT: ClassVar[Dialect]
    """How the backend's driver writes a filter's SQL (store/sql.py)."""
    LOCK_ROW: ClassVar[str]
    """What makes a ``SELECT`` lock the rows it reads until the transaction ends."""

    NODE_NOW: ClassVar[str]
    """The SQL expression of the time a node lease's heartbeat is stamped with."""
    NODE_EXPIRED: ClassVar[str]
    """The SQL condition of a node lease not renewed for ``?`` seconds."""

    default_retention_days: float = 30.0

    def __init__(self) -> None:
        self.log = EventLog(self)
        self.handlers = Handlers(self)
        self.organisations = Organisations(self)
        self.meta = Meta(self)
        self.nodes = Nodes(self)
        self.quarantine = Quarantine(self)
        self.usage = Usage(self)
        self.devices = Devices(self)
        self.rules = RuleRepository(self)

    # -- the backend's interface ----------------------------------------------
    def unpack(self, dictionary_id: int, data: bytes) -> bytes:
        """A stored record as served (``store.records.RecordMethods`` decompresses)."""
        raise NotImplementedError

    def served(self, dictionary_id: int, data: bytes) -> bytes:
        """An event row's record as served, null keys filled (``RecordMethods``)."""
        raise NotImplementedError

    @abstractmethod
    def read(self, work: Callable[[C], T], time_limit: float | None = None) -> T:
        """Run ``work`` on a connection outside any explicit transaction.

        With a ``time_limit`` (seconds), the database stops ``work``'s statements once it has
        passed and QueryTimeout is raised: one tenant's scan cannot hold a connection long.
        """

    @abstractmethod
    def transaction(self, durable: bool = True) -> AbstractContextManager[C]:
        """A connection inside a transaction: committed on exit, rolled back on error.

        ``durable=False`` commits without waiting for the disk: a crash of the process loses
        nothing, one of the machine may undo the last such commits (delivery bookkeeping,
        where that only means delivering again).
        """

    @abstractmethod
    def event_ids_param(self, event_ids: tuple[int, ...]) -> object:
        """A delivery's event ids as the ``deliveries.event_ids`` column takes them."""

    @abstractmethod
    def event_ids(self, value: Any) -> tuple[int, ...]:
        """A delivery's event ids from the ``deliveries.event_ids`` column."""

    @abstractmethod
    def claim_handler_rows(self, owner: str, now_ms: int, lease_ms: int, columns: str) -> list[Any]:
        """``Handlers.claim``'s work: lease the handlers ``owner`` may take; the rows of
        ``columns`` of every enabled handler ``owner`` holds now."""

    @abstractmethod
    def append(self, events: Sequence[NewEvent], ids: Sequence[int]) -> list[bytes]:
        """``EventLog.append``: the events in one transaction of their own."""

    @abstractmethod
    def read_log(
        self, after_seq: int, limit: int, organisation_ids: tuple[int, ...] | None
    ) -> list[LogEntry]:
        """``EventLog.read``."""

    @abstractmethod
    def scan_log(
        self,
        after_seq: int,
        limit: int,
        organisation_ids: tuple[int, ...],
        upto_seq: int | None,
        scan_rows: int,
        matching: Where | None = None,
    ) -> LogScan:
        """``EventLog.scan``; ``matching``, a condition (no ``WHERE``) the entries meet."""

    @abstractmethod
    def last_seq(self) -> int:
        """``EventLog.last_seq``."""

    @abstractmethod
    def insert_events(self, conn: C, events: Sequence[NewEvent], ids: Sequence[int]) -> list[bytes]:
        """``append``'s work inside a transaction already open on ``conn``."""

    def insert_device_keys(self, conn: C, rows: Sequence[DeviceKey]) -> None:
        """Add ``rows`` to ``device_keys`` (those it has already are left)."""
        if rows:  # executemany: the same call on both drivers
            cast(Any, conn).cursor().executemany(self.sql(INSERT_DEVICE_KEYS), rows)

    def before_insert(self, events: Sequence[NewEvent]) -> None:
        """Check, outside any transaction, that ``events`` may be inserted: not by a process
        that lost its node id (StoreUnavailable)."""
        if (reason := self.nodes.refusal()) is not None:
            raise StoreUnavailable(reason)

    def write(self, work: Callable[[C], T]) -> T:
        """Run ``work``, one write statement, as a transaction of its own."""
        with self.transaction() as conn:
            return work(conn)

    def sql(self, sql: str) -> str:
        """``sql``, written with ``?`` placeholders, in the driver's parameter style."""
        return sql

    def any(self, column: str, values: tuple[int, ...]) -> tuple[str, list[object]]:
        """A condition and its parameters: ``column`` is one of ``values`` (none: false)."""
        marks = ", ".join("?" * len(values)) or "NULL"
        return f"{column} IN ({marks})", list(values)

    def after_chosen_organisation_id(self, conn: C) -> None:
        """Keep generated organisation ids ahead of one chosen by hand (nothing to do)."""

    def retention_changed(self) -> None:
        """An organisation's retention was set: prepare what its window needs (nothing)."""

    def execute(self, conn: C, sql: str, params: Sequence[object] = ()) -> Cursor:
        return conn.execute(self.sql(sql), params)

    def maintain(self) -> None:
        """Nothing to prepare ahead of time (PostgreSQL creates partitions)."""

    def lock_nodes(self, conn: C) -> None:
        """Serialise node leasing among processes (SQLite's one writer does already)."""

    def lock_ids(self, conn: C, table: str, ms: int) -> None:
        """Serialise the choice of ``table``'s new ids in millisecond ``ms`` until the
        transaction ends (SQLite's one writer does already)."""

    def new_ids(self, conn: C, table: str, count: int, unix_ms: int) -> list[int]:
        """``count`` ids, increasing, for new rows of ``table`` (``handlers``,
        ``rejected_records``, ``tokens``) made at ``unix_ms``: random free slots of that
        millisecond (``herald.ids.draw_public_ids``), or of the next ones when it is full."""
        ids: list[int] = []
        ms = public_id_ms(unix_ms)
        while len(ids) < count:
            self.lock_ids(conn, table, ms)
            low, high = public_id_bounds(ms)
            sql = f"SELECT id FROM {table} WHERE id BETWEEN ? AND ?"
            taken = [int(row[0]) for row in self.execute(conn, sql, (low, high)).fetchall()]
            ids += draw_public_ids(ms, taken, count - len(ids))
            ms += 1
        return ids

    def insert_next(
        self, conn: C, table: str, handler_id: int, insert: str, params: Sequence[object]
    ) -> int:
        """Run ``insert`` (a row of ``table``: ``deliveries``, ``replays``; its first
        parameter the id) with a new id and return the id: the handler's next, a random slot
        of this millisecond above the handler's last id (``herald.ids.next_public_id``), so
        the handler's rows keep their order and their ids tell nothing of other
        organisations'. The caller holds the handler's row lock; no other lock is taken,
        nor other rows read: where another row has the id, it is drawn again, higher."""
        sql = f"SELECT MAX(id) FROM {table} WHERE handler_id = ?"  # (handler_id, id) index
        last = self.execute(conn, sql, (handler_id,)).fetchone()
        after: int | None = None if last is None or last[0] is None else int(last[0])
        ms = public_id_ms(now_ms())
        while True:
            new_id = next_public_id(ms, after)
            row = self.execute(
                conn, f"{insert} ON CONFLICT DO NOTHING RETURNING id", (new_id, *params)
            ).fetchone()
            if row is not None:
                return new_id
            after = new_id

    def retention_cutoffs(self, now: int) -> dict[int, list[int]]:
        """Each cutoff (an organisation's events older than it go) -> its organisations, in
        groups of at most 500; the default cutoff is always there, if only with none."""
        default = window_start_ms(now, self.default_retention_days)
        groups: dict[int, list[int]] = {default: []}
        for organisation in self.organisations.all():
            days = retention_days(organisation.retention_days, self.default_retention_days)
            groups.setdefault(window_start_ms(now, days), []).append(organisation.id)
        return groups

    @staticmethod
    def in_chunks(ids: list[int], size: int = 500) -> list[list[int]]:
        return [ids[start : start + size] for start in range(0, len(ids), size)]
