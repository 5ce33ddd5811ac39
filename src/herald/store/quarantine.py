"""The ingest quarantine: provider records Herald could not use, kept per organisation.

Each row holds the record's bytes as the provider sent them (only their first bytes, with the
size, when the record was larger than a quarantined record may be), why it was refused, and
when; a record is kept once per (organisation, provider, digest of its bytes), so a re-sent
batch adds nothing. Rows leave by a retry that stores them, by a discard, or with the
retention period (by when they were received).

``quarantine_usage`` counts each organisation's records and their bytes, so that its quota
is checked without a scan. Every change of an organisation's rows locks its usage row first
(in organisation order), which also serialises the quota check among PostgreSQL writers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic

import orjson

from herald.store.dbapi import C
from herald.store.rejections import NewRejection, QuarantineLimits, Rejected, RejectedPage
from herald.timefmt import now_ms

if TYPE_CHECKING:
    from herald.store.common import SQLStoreBase

_FIELDS = (
    "id",
    "organisation_id",
    "provider",
    "received_ms",
    "attempted_ms",
    "attempts",
    "errors",
    "record",
    "digest",
    "original_bytes",
)
_COLUMNS = ", ".join(_FIELDS)
_SIZE = "length(record) + length(errors)"
"""What a row weighs in a page's byte budget (read without reading the record itself)."""


def _rejected(row: Sequence[Any]) -> Rejected:
    """The record in a row of ``_COLUMNS``, read by column name."""
    named = dict(zip(_FIELDS, row, strict=True))
    original = named["original_bytes"]
    return Rejected(
        id=int(named["id"]),
        organisation_id=int(named["organisation_id"]),
        provider=str(named["provider"]),
        received_ms=int(named["received_ms"]),
        attempted_ms=int(named["attempted_ms"]),
        attempts=int(named["attempts"]),
        errors=orjson.loads(named["errors"]),
        record=bytes(named["record"]),
        digest=str(named["digest"]),
        original_bytes=None if original is None else int(original),
    )


def _scope(
    organisation_ids: tuple[int, ...] | None,
    provider: str | None,
    *more: tuple[str, object],
) -> tuple[str, list[object]]:
    conditions: list[str] = []
    params: list[object] = []
    if organisation_ids is not None:
        marks = ", ".join("?" * len(organisation_ids)) or "NULL"
        conditions.append(f"organisation_id IN ({marks})")
        params.extend(organisation_ids)
    if provider is not None:
        conditions.append("provider = ?")
        params.append(provider)
    for condition, value in more:
        conditions.append(condition)
        if value is not None:
            params.append(value)
    return (" WHERE " + " AND ".join(conditions) if conditions else ""), params


def _within(sizes: Sequence[Sequence[Any]], limit: int, max_bytes: int | None) -> list[Any]:
    """The leading rows of ``(id, organisation_id, size)`` that fit ``max_bytes`` (at
    least one), at most ``limit``."""
    chosen: list[Any] = []
    used = 0
    for row in sizes[:limit]:
        size = int(row[2] or 0)
        if chosen and max_bytes is not None and used + size > max_bytes:
            break
        chosen.append(row)
        used += size
    return chosen


class Quarantine(Generic[C]):
    """The ingest quarantine (``store.quarantine``): each organisation's refused records."""

    def __init__(self, db: SQLStoreBase[C]) -> None:
        self._db = db

    def _lock_usage(self, conn: C, organisation_ids: Iterable[int]) -> dict[int, list[int]]:
        """Each organisation's usage row, locked until the transaction ends: its
        ``[records, bytes]``."""
        usage: dict[int, list[int]] = {}
        for organisation_id in sorted(set(organisation_ids)):  # one order: no deadlock
            self._db.execute(
                conn,
                "INSERT INTO quarantine_usage (organisation_id, records, bytes) VALUES (?, 0, 0) "
                "ON CONFLICT (organisation_id) DO NOTHING",
                (organisation_id,),
            )
            row = self._db.execute(
                conn,
                "SELECT records, bytes FROM quarantine_usage WHERE organisation_id = ?"
                + self._db.LOCK_ROW,
                (organisation_id,),
            ).fetchone()
            usage[organisation_id] = [int(row[0]), int(row[1])]
        return usage

    def _count_usage(self, conn: C, changes: dict[int, list[int]]) -> None:
        for organisation_id, (records, size) in changes.items():
            if records or size:
                self._db.execute(
                    conn,
                    "UPDATE quarantine_usage SET records = records + ?, bytes = bytes + ? "
                    "WHERE organisation_id = ?",
                    (records, size, organisation_id),
                )

    def keep(
        self, rejections: Sequence[NewRejection], limits: QuarantineLimits | None = None
    ) -> list[tuple[int, bool] | None]:
        """Keep each record once; per record its row id and whether it is new, or None when
        it is new and its organisation's quarantine has no room for it (``limits``)."""
        kept: list[tuple[int, bool] | None] = []
        if not rejections:
            return kept
        with self._db.transaction() as conn:
            usage = self._lock_usage(conn, (item.organisation_id for item in rejections))
            added: dict[int, list[int]] = defaultdict(lambda: [0, 0])
            # not a counter shared by all organisations: random, in the batch's order
            fresh = iter(self._db.new_ids(conn, "rejected_records", len(rejections), now_ms()))
            for item in rejections:
                existing = self._db.execute(
                    conn,
                    "SELECT id FROM rejected_records "
                    "WHERE organisation_id = ? AND provider = ? AND digest = ?",
                    (item.organisation_id, item.provider, item.digest),
                ).fetchone()
                if existing is not None:
                    kept.append((int(existing[0]), False))
                    continue
                errors = orjson.dumps(item.errors).decode()
                size = len(item.record) + len(errors)
                held = usage[item.organisation_id]
                if limits is not None and (
                    held[0] + 1 > limits.records or held[1] + size > limits.bytes
                ):
                    kept.append(None)
                    continue
                row = self._db.execute(
                    conn,
                    "INSERT INTO rejected_records (id, organisation_id, provider, digest, "
                    "received_ms, attempted_ms, errors, record, original_bytes) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (
                        next(fresh),
                        item.organisation_id,
                        item.provider,
                        item.digest,
                        item.received_ms,
                        item.received_ms,
                        errors,
                        item.record,
                        item.original_bytes,
                    ),
                ).fetchone()
                kept.append((int(row[0]), True))
                held[0] += 1
                held[1] += size
                added[item.organisation_id][0] += 1
                added[item.organisation_id][1] += size
            self._count_usage(conn, added)
        return kept

    def usage(self, organisation_id: int) -> tuple[int, int]:
        """How many records the organisation's quarantine holds, and their bytes."""
        sql = "SELECT records, bytes FROM quarantine_usage WHERE organisation_id = ?"
        row = self._db.read(lambda conn: self._db.execute(conn, sql, (organisation_id,)).fetchone())
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    def _records(self, conn: C, chosen: Sequence[Sequence[Any]], order: str) -> list[Rejected]:
        """The rows ``chosen`` (``id, organisation_id, size``), in ``order``."""
        if not chosen:
            return []
        ids, id_params = self._db.any("id", tuple(int(row[0]) for row in chosen))
        orgs, org_params = self._db.any("organisation_id", tuple({int(row[1]) for row in chosen}))
        rows = self._db.execute(
            conn,
            f"SELECT {_COLUMNS} FROM rejected_records WHERE {orgs} AND {ids} ORDER BY id {order}",
            [*org_params, *id_params],
        ).fetchall()
        return [_rejected(row) for row in rows]

    def page(
        self,
        organisation_ids: tuple[int, ...] | None,
        provider: str | None = None,
        page: int = 1,
        per_page: int = 100,
        *,
        before: int | None = None,
        max_bytes: int | None = None,
    ) -> RejectedPage:
        """A page of quarantined records, newest first (those older than the id ``before``),
        how many there are in all, and where the next page starts. The page stops before the
        record that would take its record and reason bytes past ``max_bytes`` (it holds one
        record at least): the records' sizes are read first, then only the page's records."""
        where, params = _scope(organisation_ids, provider)
        older, older_params = _scope(
            organisation_ids, provider, *([("id < ?", before)] if before is not None else [])
        )

        def read(conn: C) -> RejectedPage:
            sql = f"SELECT COUNT(*) FROM rejected_records{where}"
            total = int(self._db.execute(conn, sql, params).fetchone()[0])
            sizes = self._db.execute(
                conn,
                f"SELECT id, organisation_id, {_SIZE} FROM rejected_records{older} "
                "ORDER BY id DESC LIMIT ? OFFSET ?",
                [*older_params, per_page + 1, (page - 1) * per_page],
            ).fetchall()
            chosen = _within(sizes, per_page, max_bytes)
            more = len(sizes) > len(chosen)
            records = self._records(conn, chosen, "DESC")
            return RejectedPage(records, total, int(chosen[-1][0]) if more else None)

        return self._db.read(read)

    def count(
        self,
        organisation_ids: tuple[int, ...] | None,
        provider: str | None = None,
        truncated: bool | None = None,
    ) -> int:
        """How many quarantined records there are (only those kept truncated, or only those
        kept whole)."""
        more = [] if truncated is None else [(_truncated(truncated), None)]
        where, params = _scope(organisation_ids, provider, *more)
        sql = f"SELECT COUNT(*) FROM rejected_records{where}"
        return int(self._db.read(lambda conn: self._db.execute(conn, sql, params).fetchone()[0]))

    def oldest(
        self,
        organisation_ids: tuple[int, ...] | None,
        provider: str | None,
        limit: int,
        max_bytes: int | None = None,
    ) -> list[Rejected]:
        """Up to ``limit`` quarantined records kept whole, oldest first (what a bulk retry
        works on), stopping before the one that would pass ``max_bytes`` (one at least)."""
        where, params = _scope(organisation_ids, provider, (_truncated(False), None))
        sql = (
            f"SELECT id, organisation_id, {_SIZE} FROM rejected_records{where} ORDER BY id LIMIT ?"
        )

        def read(conn: C) -> list[Rejected]:
            sizes = self._db.execute(conn, sql, [*params, limit]).fetchall()
            return self._records(conn, _within(sizes, limit, max_bytes), "")

        return self._db.read(read)

    def get(self, rejected_id: int, organisation_ids: tuple[int, ...] | None) -> Rejected | None:
        """One quarantined record, or None if absent or not in ``organisation_ids``."""
        where, params = _scope(organisation_ids, None, ("id = ?", rejected_id))
        sql = f"SELECT {_COLUMNS} FROM rejected_records{where}"
        row = self._db.read(lambda conn: self._db.execute(conn, sql, params).fetchone())
        return _rejected(row) if row is not None else None

    def release(self, rejected_ids: Sequence[int]) -> int:
        """Delete records a retry stored (or an operator discarded); how many went."""
        if not rejected_ids:
            return 0
        condition, params = self._db.any("id", tuple(rejected_ids))
        with self._db.transaction() as conn:
            owners = self._db.execute(
                conn,
                f"SELECT DISTINCT organisation_id FROM rejected_records WHERE {condition}",
                params,
            ).fetchall()
            self._lock_usage(conn, (int(row[0]) for row in owners))
            gone = self._db.execute(
                conn,
                f"DELETE FROM rejected_records WHERE {condition} "
                f"RETURNING organisation_id, {_SIZE}",
                params,
            ).fetchall()
            self._count_usage(conn, _less(gone))
        return len(gone)

    def refuse_again(
        self, refusals: Sequence[tuple[int, list[dict[str, Any]]]], at_ms: int
    ) -> None:
        """Records a retry still could not use: their new reasons, one attempt more each."""
        if not refusals:
            return
        with self._db.transaction() as conn:
            changes = []
            for rejected_id, errors in refusals:
                text = orjson.dumps(errors).decode()
                row = self._db.execute(
                    conn,
                    "SELECT organisation_id, length(errors) FROM rejected_records WHERE id = ?",
                    (rejected_id,),
                ).fetchone()
                if row is not None:
                    changes.append((int(row[0]), len(text) - int(row[1])))
                self._db.execute(
                    conn,
                    "UPDATE rejected_records SET errors = ?, attempted_ms = ?, "
                    "attempts = attempts + 1 WHERE id = ?",
                    (text, at_ms, rejected_id),
                )
            # the reasons' bytes count too; they change little (bounded reasons)
            grown: dict[int, list[int]] = defaultdict(lambda: [0, 0])
            for organisation_id, delta in changes:
                grown[organisation_id][1] += delta
            self._count_usage(conn, grown)

    def purge(self, before_ms: int) -> int:
        """Delete quarantined records received before ``before_ms``; how many went."""
        with self._db.transaction() as conn:
            owners = self._db.execute(
                conn,
                "SELECT DISTINCT organisation_id FROM rejected_records WHERE received_ms < ?",
                (before_ms,),
            ).fetchall()
            if not owners:
                return 0
            self._lock_usage(conn, (int(row[0]) for row in owners))
            sums = self._db.execute(
                conn,
                f"SELECT organisation_id, COUNT(*), SUM({_SIZE}) FROM rejected_records "
                "WHERE received_ms < ? GROUP BY organisation_id",
                (before_ms,),
            ).fetchall()
            deleted = self._db.execute(
                conn, "DELETE FROM rejected_records WHERE received_ms < ?", (before_ms,)
            ).rowcount
            self._count_usage(
                conn, {int(org): [-int(count), -int(size or 0)] for org, count, size in sums}
            )
        return int(deleted)


def _truncated(truncated: bool) -> str:
    return "original_bytes IS NOT NULL" if truncated else "original_bytes IS NULL"


def _less(gone: Sequence[Sequence[Any]]) -> dict[int, list[int]]:
    """Usage changes for the deleted rows ``(organisation_id, size)``."""
    changes: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for organisation_id, size in gone:
        changes[int(organisation_id)][0] -= 1
        changes[int(organisation_id)][1] -= int(size or 0)
    return changes
