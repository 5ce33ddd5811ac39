"""Event handlers with their attempt log (deliveries) and replays: ``store.handlers``."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic

import orjson

from herald.catalog import load_catalog
from herald.handlers.filters import from_legacy
from herald.handlers.types import Delivery, Handler, HandlerProgress, HandlerSpec, Replay
from herald.store.dbapi import C
from herald.store.errors import LimitReached, NotFound
from herald.timefmt import now_ms

if TYPE_CHECKING:
    from herald.store.common import SQLStoreBase

HANDLER_FIELDS = (
    "id",
    "organisation_id",
    "name",
    "type",
    "url",
    "format",
    "filter",
    "batch_max_events",
    "batch_max_wait_ms",
    "batch_max_bytes",
    "retention_ms",
    "settings",
    "credentials",
    "enabled",
    "disabled_reason",
    "secret",
    "previous_secret",
    "previous_secret_until_ms",
    "cursor_seq",
    "failures",
    "failing_since_ms",
    "next_attempt_ms",
    "last_success_ms",
    "last_error",
    "owner",
    "lease_until_ms",
    "created_ms",
    "updated_ms",
)
HANDLER_COLUMNS = ", ".join(HANDLER_FIELDS)
SELECT_HANDLER = f"SELECT {HANDLER_COLUMNS} FROM handlers"
DELIVERY_FIELDS = (
    "id",
    "handler_id",
    "organisation_id",
    "at_ms",
    "kind",
    "event_ids",
    "status",
    "outcome",
    "error",
    "latency_ms",
)
REPLAY_FIELDS = (
    "id",
    "handler_id",
    "from_ms",
    "until_ms",
    "cursor_seq",
    "end_seq",
    "created_ms",
    "done_ms",
)


class Handlers(Generic[C]):
    """Event handlers, their cursors and leases, their attempt log and replays."""

    def __init__(self, db: SQLStoreBase[C]) -> None:
        self._db = db

    # -- handlers -------------------------------------------------------------
    def create(
        self,
        organisation_id: int,
        spec: HandlerSpec,
        secret: str,
        max_handlers: int | None = None,
    ) -> Handler:
        """A new handler whose cursor is the end of the log: it gets events from now on.
        LimitReached if the organisation has ``max_handlers`` already."""
        db = self._db
        created = now_ms()
        with db.transaction() as conn:
            if max_handlers is not None:  # counted under the organisation's lock: no race
                db.execute(
                    conn,
                    f"SELECT id FROM organisations WHERE id = ?{db.LOCK_ROW}",
                    (organisation_id,),
                ).fetchone()
                count = db.execute(
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
            (handler_id,) = db.new_ids(conn, "handlers", 1, created)
            row = db.execute(
                conn,
                "INSERT INTO handlers (id, organisation_id, name, type, url, format, filter, "
                "batch_max_events, batch_max_wait_ms, batch_max_bytes, retention_ms, settings, "
                "credentials, enabled, disabled_reason, secret, cursor_seq, created_ms, "
                "updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                f"({db.LAST_SEQ}), ?, ?) RETURNING {HANDLER_COLUMNS}",
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

    def get(
        self, handler_id: int, organisation_ids: tuple[int, ...] | None = None
    ) -> Handler | None:
        sql, params = self._scoped(SELECT_HANDLER + " WHERE id = ?", [handler_id], organisation_ids)
        row = self._db.read(lambda c: self._db.execute(c, sql, params).fetchone())
        return handler_from_row(row) if row else None

    def all(self, organisation_ids: tuple[int, ...] | None = None) -> builtins.list[Handler]:
        """Every handler of these organisations (None: of all), by id."""
        sql, params = self._scoped(SELECT_HANDLER + " WHERE TRUE", [], organisation_ids)
        rows = self._db.read(lambda c: self._db.execute(c, sql + " ORDER BY id", params).fetchall())
        return [handler_from_row(row) for row in rows]

    def update(
        self, handler_id: int, organisation_ids: tuple[int, ...] | None, spec: HandlerSpec
    ) -> Handler:
        """Replace the spec; enabling a disabled handler clears its failures, never its
        cursor (it resumes where it stopped). Raises NotFound."""
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
        return self._update(sql, params, handler_id)

    def delete(self, handler_id: int, organisation_ids: tuple[int, ...] | None) -> None:
        """Delete a handler with its attempt log and replays; raises NotFound."""
        sql, params = self._scoped(
            "DELETE FROM handlers WHERE id = ?", [handler_id], organisation_ids
        )
        if self._db.write(lambda c: self._db.execute(c, sql, params).rowcount) == 0:
            raise NotFound(f"no event handler {handler_id}")

    def rotate_secret(
        self,
        handler_id: int,
        organisation_ids: tuple[int, ...] | None,
        secret: str,
        previous_until_ms: int,
    ) -> Handler:
        """Install a new secret; the current one stays valid until ``previous_until_ms``."""
        sql, params = self._scoped(
            "UPDATE handlers SET previous_secret = secret, previous_secret_until_ms = ?, "
            "secret = ?, updated_ms = ? WHERE id = ?",
            [previous_until_ms, secret, now_ms(), handler_id],
            organisation_ids,
        )
        return self._update(sql, params, handler_id)

    def reseal_secrets(self, reseal: Callable[[str], str | None]) -> int:
        """Rewrite each handler's secrets as ``reseal`` gives them (None: as they are);
        how many handlers changed. A handler changed meanwhile keeps its new secrets."""
        db = self._db
        rows = db.read(
            lambda c: db.execute(
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
            with db.transaction() as conn:
                changed += db.execute(
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

    def upgrade_filters(self) -> int:
        """Rewrite handler filters kept in the shape before the ``q`` form; how many."""
        db = self._db
        rows = db.read(
            lambda c: db.execute(
                c, "SELECT id, filter FROM handlers WHERE filter NOT LIKE '\"%'"
            ).fetchall()
        )
        if rows:  # a read-only database with nothing to rewrite still opens
            catalog = load_catalog()
            with db.transaction() as conn:
                for handler_id, kept in rows:
                    text = orjson.dumps(from_legacy(orjson.loads(kept), catalog)).decode()
                    db.execute(
                        conn, "UPDATE handlers SET filter = ? WHERE id = ?", (text, handler_id)
                    )
        return len(rows)

    def _update(self, sql: str, params: builtins.list[object], handler_id: int) -> Handler:
        row = self._db.write(
            lambda c: self._db.execute(c, f"{sql} RETURNING {HANDLER_COLUMNS}", params).fetchone()
        )
        if row is None:
            raise NotFound(f"no event handler {handler_id}")
        return handler_from_row(row)

    def _scoped(
        self, sql: str, params: builtins.list[object], organisation_ids: tuple[int, ...] | None
    ) -> tuple[str, builtins.list[object]]:
        """Narrow a statement on handlers to the caller's organisations (None: all)."""
        if organisation_ids is None:
            return sql, params
        condition, values = self._db.any("organisation_id", organisation_ids)
        return f"{sql} AND {condition}", [*params, *values]

    # -- leases and cursors ---------------------------------------------------
    def claim(self, owner: str, now_ms: int, lease_ms: int) -> builtins.list[Handler]:
        """Lease every enabled handler that is free, expired or already ``owner``'s.

        Every enabled handler ``owner`` holds is in the answer, even one whose row its own
        bookkeeping has locked at that moment: the worker takes a handler missing from it
        as lost. A backend with several workers takes the free and expired ones with
        ``FOR UPDATE SKIP LOCKED``, so that workers never queue behind each other.
        """
        rows = self._db.claim_handler_rows(owner, now_ms, lease_ms, HANDLER_COLUMNS)
        return sorted((handler_from_row(row) for row in rows), key=lambda handler: handler.id)

    def claimable_ids(self, owner: str, now_ms: int) -> builtins.list[int]:
        """Ids of the enabled handlers ``claim`` would lease now; a cheap read, so a worker
        can look often for handlers to take up."""
        rows = self._db.read(
            lambda c: self._db.execute(
                c,
                "SELECT id FROM handlers WHERE enabled "
                "AND (owner IS NULL OR owner = ? OR lease_until_ms < ?) ORDER BY id",
                (owner, now_ms),
            ).fetchall()
        )
        return [row[0] for row in rows]

    def release(self, owner: str) -> None:
        """Give up ``owner``'s leases (on a clean shutdown)."""
        self._db.write(
            lambda c: self._db.execute(
                c,
                "UPDATE handlers SET owner = NULL, lease_until_ms = NULL WHERE owner = ?",
                (owner,),
            )
        )

    def advance_cursor(
        self, handler_id: int, owner: str, cursor_seq: int, organisation_id: int
    ) -> Handler | None:
        """Move the cursor past events that match nothing; the handler as written, None if
        the lease is lost (or the handler is gone or not ``organisation_id``'s)."""
        db = self._db
        with db.transaction(durable=False) as conn:
            row = db.execute(
                conn,
                f"UPDATE handlers SET cursor_seq = {db.GREATEST}(cursor_seq, ?) "
                "WHERE id = ? AND organisation_id = ? AND owner = ? "
                f"RETURNING {HANDLER_COLUMNS}",
                (cursor_seq, handler_id, organisation_id, owner),
            ).fetchone()
        return handler_from_row(row) if row else None

    def advance_cursors(self, owner: str, handler_ids: Sequence[int], cursor_seq: int) -> None:
        """Move the cursors of ``owner``'s handlers ``handler_ids`` forward to ``cursor_seq``
        (never back), not waiting for the disk: idle handlers in one write."""
        db = self._db
        with db.transaction(durable=False) as conn:
            for start in range(0, len(handler_ids), 500):
                marks, params = db.any("id", tuple(handler_ids[start : start + 500]))
                db.execute(
                    conn,
                    f"UPDATE handlers SET cursor_seq = {db.GREATEST}(cursor_seq, ?) "
                    f"WHERE owner = ? AND {marks}",
                    (cursor_seq, owner, *params),
                )

    # -- deliveries -------------------------------------------------------------
    def record_delivery(
        self,
        owner: str,
        delivery: Delivery,
        progress: HandlerProgress | None,
        replay_cursor: tuple[int, int] | None = None,
        earlier: Sequence[Delivery] = (),
    ) -> Handler | None:
        """In one transaction, not waiting for the disk: ``recording``'s rows. A crash of the
        machine (not of the process) may undo the last attempts, whose events are then
        delivered again."""
        with self._db.transaction(durable=False) as conn:
            return self.recording(owner, delivery, progress, replay_cursor, earlier)(conn)

    def recording(
        self,
        owner: str,
        delivery: Delivery,
        progress: HandlerProgress | None,
        replay_cursor: tuple[int, int] | None = None,
        earlier: Sequence[Delivery] = (),
    ) -> Callable[[C], Handler | None]:
        """An attempt's bookkeeping, as work for a transaction (``record_delivery``'s, or
        the writer's that appends the "handler disabled" notice with it): log the attempt
        (after ``earlier``, the same handler's attempts not yet logged: a group commit),
        write the handler's progress, move a replay's cursor ``(replay id, seq)``; the
        handler as written. None (and nothing written) if ``owner`` no longer holds the
        lease, or the handler of ``delivery.handler_id`` is gone or not
        ``delivery.organisation_id``'s (handler ids are never given twice). A test delivery
        (no progress) needs no lease."""
        db = self._db

        def record(conn: C) -> Handler | None:
            if progress is None:
                row = db.execute(  # locked: the handler's attempts take ids in turn
                    conn,
                    f"{SELECT_HANDLER} WHERE id = ? AND organisation_id = ?{db.LOCK_ROW}",
                    (delivery.handler_id, delivery.organisation_id),
                )
            else:
                row = db.execute(
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
            for attempt in (*earlier, delivery):
                self._log_attempt(conn, attempt)
            return handler_from_row(handler)

        return record

    def _log_attempt(self, conn: C, delivery: Delivery) -> None:
        """One row of the attempt log (the caller holds the handler's row lock)."""
        db = self._db
        db.insert_next(
            conn,
            "deliveries",
            delivery.handler_id,
            "INSERT INTO deliveries (id, organisation_id, handler_id, at_ms, kind, "
            "event_ids, status, outcome, error, latency_ms) "
            f"VALUES (?, ?, ?, ?, ?, {db.EVENT_IDS_MARK}, ?, ?, ?, ?)",
            (
                delivery.organisation_id,
                delivery.handler_id,
                delivery.at_ms,
                delivery.kind,
                db.event_ids_param(delivery.event_ids),
                delivery.status,
                delivery.outcome,
                delivery.error,
                delivery.latency_ms,
            ),
        )

    def deliveries(
        self, handler_id: int, before_id: int | None = None, limit: int = 100
    ) -> builtins.list[Delivery]:
        """The attempt log, newest first, keyset-paged by ``before_id``."""
        sql = (
            "SELECT d.id, d.handler_id, h.organisation_id, d.at_ms, d.kind, d.event_ids, "
            "d.status, d.outcome, d.error, d.latency_ms "
            "FROM deliveries d JOIN handlers h ON h.id = d.handler_id WHERE d.handler_id = ?"
        )
        params: builtins.list[object] = [handler_id]
        if before_id is not None:
            sql += " AND d.id < ?"
            params.append(before_id)
        sql += " ORDER BY d.id DESC LIMIT ?"
        params.append(limit)
        rows = self._db.read(lambda c: self._db.execute(c, sql, params).fetchall())
        deliveries = []
        for row in rows:
            named = dict(zip(DELIVERY_FIELDS, row, strict=True))
            named["event_ids"] = self._db.event_ids(named["event_ids"])
            deliveries.append(Delivery(**named))
        return deliveries

    # -- replays --------------------------------------------------------------
    def create_replay(self, handler_id: int, from_ms: int, until_ms: int) -> Replay:
        """Queue the handler's events of ``[from_ms, until_ms]`` committed by now."""
        db = self._db
        created = now_ms()
        with db.transaction() as conn:
            handler = db.execute(  # locked: the handler's replays take ids in turn
                conn,
                f"SELECT organisation_id FROM handlers WHERE id = ?{db.LOCK_ROW}",
                (handler_id,),
            ).fetchone()
            if handler is None:
                raise NotFound(f"no event handler {handler_id}")
            first, last = db.execute(
                conn,
                "SELECT MIN(seq), MAX(seq) FROM events "
                "WHERE organisation_id = ? AND ts >= ? AND ts <= ?",
                (handler[0], from_ms, until_ms),
            ).fetchone()
            start, end = (first - 1, last) if first is not None else (0, 0)
            done = created if end == 0 else None
            replay_id = db.insert_next(
                conn,
                "replays",
                handler_id,
                "INSERT INTO replays (id, organisation_id, handler_id, from_ms, until_ms, "
                "cursor_seq, end_seq, created_ms, done_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (handler[0], handler_id, from_ms, until_ms, start, end, created, done),
            )
            db.execute(  # a changed handler: the worker's next lease renewal wakes it
                conn, "UPDATE handlers SET updated_ms = ? WHERE id = ?", (created, handler_id)
            )
        return Replay(replay_id, handler_id, from_ms, until_ms, start, end, created, done)

    def pending_replays(self, handler_id: int) -> builtins.list[Replay]:
        """The handler's replays not done yet, oldest first."""
        rows = self._db.read(
            lambda c: self._db.execute(
                c,
                f"SELECT {', '.join(REPLAY_FIELDS)} FROM replays "
                "WHERE handler_id = ? AND done_ms IS NULL ORDER BY id",
                (handler_id,),
            ).fetchall()
        )
        return [Replay(**dict(zip(REPLAY_FIELDS, row, strict=True))) for row in rows]

    def advance_replay(
        self, replay_id: int, cursor_seq: int, handler_id: int, organisation_id: int
    ) -> None:
        """Move a replay's cursor; it is done once it reaches its end. Nothing is written
        unless the replay is ``handler_id``'s and the handler ``organisation_id``'s."""
        db = self._db
        with db.transaction(durable=False) as conn:
            owned = db.execute(
                conn,
                "SELECT 1 FROM handlers WHERE id = ? AND organisation_id = ?",
                (handler_id, organisation_id),
            ).fetchone()
            if owned is not None:
                self._move_replay(conn, replay_id, cursor_seq, handler_id)

    def _move_replay(self, conn: C, replay_id: int, cursor_seq: int, handler_id: int) -> None:
        db = self._db
        db.execute(
            conn,
            f"UPDATE replays SET cursor_seq = {db.GREATEST}(cursor_seq, ?), "
            "done_ms = CASE WHEN ? >= end_seq THEN ? ELSE NULL END "
            "WHERE id = ? AND handler_id = ?",
            (cursor_seq, cursor_seq, now_ms(), replay_id, handler_id),
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
    """The handler in a row of ``HANDLER_COLUMNS``, read by column name."""
    named: Mapping[str, Any] = dict(zip(HANDLER_FIELDS, row, strict=True))
    spec = HandlerSpec(
        name=named["name"],
        type=named["type"],
        url=named["url"],
        format=named["format"],
        filter=orjson.loads(named["filter"]),  # q text: older shapes are upgraded on open
        batch_max_events=named["batch_max_events"],
        batch_max_wait_ms=named["batch_max_wait_ms"],
        retention_ms=named["retention_ms"],
        enabled=bool(named["enabled"]),
        settings=named["settings"],
        credentials=named["credentials"],
        batch_max_bytes=named["batch_max_bytes"],
    )
    return Handler(
        id=named["id"],
        organisation_id=named["organisation_id"],
        spec=spec,
        disabled_reason=named["disabled_reason"],
        secret=named["secret"],
        previous_secret=named["previous_secret"],
        previous_secret_until_ms=named["previous_secret_until_ms"],
        cursor_seq=named["cursor_seq"],
        failures=named["failures"],
        failing_since_ms=named["failing_since_ms"],
        next_attempt_ms=named["next_attempt_ms"],
        last_success_ms=named["last_success_ms"],
        last_error=named["last_error"],
        owner=named["owner"],
        lease_until_ms=named["lease_until_ms"],
        created_ms=named["created_ms"],
        updated_ms=named["updated_ms"],
    )
