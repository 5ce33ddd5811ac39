"""The ingest quarantine: provider records Herald could not use, kept per organisation.

Each row holds the record's bytes as the provider sent them, why it was refused, and when;
a record is kept once per (organisation, provider, digest of its bytes), so a re-sent batch
adds nothing. Rows leave by a retry that stores them, by a discard, or with the retention
period (by when they were received).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from herald.store.common import C, SQLStoreBase
from herald.store.rejections import NewRejection, Rejected
from herald.timefmt import now_ms

_COLUMNS = "id, organisation_id, provider, received_ms, attempted_ms, attempts, errors, record"


def _rejected(row: Sequence[Any]) -> Rejected:
    return Rejected(
        id=int(row[0]),
        organisation_id=int(row[1]),
        provider=str(row[2]),
        received_ms=int(row[3]),
        attempted_ms=int(row[4]),
        attempts=int(row[5]),
        errors=orjson.loads(row[6]),
        record=bytes(row[7]),
    )


def _scope(
    organisation_ids: tuple[int, ...] | None, provider: str | None
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
    return (" WHERE " + " AND ".join(conditions) if conditions else ""), params


class QuarantineMethods(SQLStoreBase[C]):
    """The quarantine's Store methods, shared by the SQL backends."""

    def quarantine(self, rejections: Sequence[NewRejection]) -> list[tuple[int, bool]]:
        """Keep each record once; per record its row id and whether it is new."""
        kept: list[tuple[int, bool]] = []
        if not rejections:
            return kept
        with self._transaction() as conn:
            # not a counter shared by all organisations: random, in the batch's order
            fresh = iter(self._new_ids(conn, "rejected_records", len(rejections), now_ms()))
            for item in rejections:
                row = self._execute(
                    conn,
                    "INSERT INTO rejected_records (id, organisation_id, provider, digest, "
                    "received_ms, attempted_ms, errors, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (organisation_id, provider, digest) DO NOTHING RETURNING id",
                    (
                        next(fresh),
                        item.organisation_id,
                        item.provider,
                        item.digest,
                        item.received_ms,
                        item.received_ms,
                        orjson.dumps(item.errors).decode(),
                        item.record,
                    ),
                ).fetchone()
                if row is not None:
                    kept.append((int(row[0]), True))
                    continue
                existing = self._execute(
                    conn,
                    "SELECT id FROM rejected_records "
                    "WHERE organisation_id = ? AND provider = ? AND digest = ?",
                    (item.organisation_id, item.provider, item.digest),
                ).fetchone()
                kept.append((int(existing[0]), False))
        return kept

    def list_rejected(
        self,
        organisation_ids: tuple[int, ...] | None,
        provider: str | None = None,
        page: int = 1,
        per_page: int = 100,
    ) -> tuple[list[Rejected], int]:
        """A page of quarantined records, newest first, and how many there are in all."""
        where, params = _scope(organisation_ids, provider)

        def read(conn: C) -> tuple[list[Rejected], int]:
            sql = f"SELECT COUNT(*) FROM rejected_records{where}"
            total = int(self._execute(conn, sql, params).fetchone()[0])
            rows = self._execute(
                conn,
                f"SELECT {_COLUMNS} FROM rejected_records{where} ORDER BY id DESC LIMIT ? OFFSET ?",
                [*params, per_page, (page - 1) * per_page],
            ).fetchall()
            return [_rejected(row) for row in rows], total

        return self._read(read)

    def oldest_rejected(
        self, organisation_ids: tuple[int, ...] | None, provider: str | None, limit: int
    ) -> list[Rejected]:
        """Up to ``limit`` quarantined records, oldest first (what a bulk retry works on)."""
        where, params = _scope(organisation_ids, provider)
        sql = f"SELECT {_COLUMNS} FROM rejected_records{where} ORDER BY id LIMIT ?"
        rows = self._read(lambda conn: self._execute(conn, sql, [*params, limit]).fetchall())
        return [_rejected(row) for row in rows]

    def get_rejected(
        self, rejected_id: int, organisation_ids: tuple[int, ...] | None
    ) -> Rejected | None:
        """One quarantined record, or None if absent or not in ``organisation_ids``."""
        where, params = _scope(organisation_ids, None)
        where = f"{where} AND id = ?" if where else " WHERE id = ?"
        sql = f"SELECT {_COLUMNS} FROM rejected_records{where}"
        row = self._read(lambda conn: self._execute(conn, sql, [*params, rejected_id]).fetchone())
        return _rejected(row) if row is not None else None

    def release_rejected(self, rejected_ids: Sequence[int]) -> int:
        """Delete records a retry stored (or an operator discarded); how many went."""
        if not rejected_ids:
            return 0
        condition, params = self._any("id", tuple(rejected_ids))
        return self._write(
            lambda conn: (
                self._execute(
                    conn, f"DELETE FROM rejected_records WHERE {condition}", params
                ).rowcount
            )
        )

    def refuse_again(
        self, refusals: Sequence[tuple[int, list[dict[str, Any]]]], at_ms: int
    ) -> None:
        """Records a retry still could not use: their new reasons, one attempt more each."""
        if not refusals:
            return
        with self._transaction() as conn:
            for rejected_id, errors in refusals:
                self._execute(
                    conn,
                    "UPDATE rejected_records SET errors = ?, attempted_ms = ?, "
                    "attempts = attempts + 1 WHERE id = ?",
                    (orjson.dumps(errors).decode(), at_ms, rejected_id),
                )

    def purge_rejected(self, before_ms: int) -> int:
        """Delete quarantined records received before ``before_ms``; how many went."""
        return self._write(
            lambda conn: (
                self._execute(
                    conn, "DELETE FROM rejected_records WHERE received_ms < ?", (before_ms,)
                ).rowcount
            )
        )
