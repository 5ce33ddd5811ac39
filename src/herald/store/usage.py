"""Provider usage records and their daily sums: ``store.usage``.

``usage_records`` keeps each provider usage record once per (organisation, provider, record
id); ``usage_daily`` their sums per endpoint and UTC day. ``Usage.save`` adds a record to its
day's sums in the same transaction that inserts it, and only if the insert was new: a
retransmitted record adds nothing, and the sums always equal the kept records. A sum never
passes ``MAX_DAILY``, which both backends hold exactly (PostgreSQL's bigint would fail the
whole transaction past it, SQLite's integer turn into a float): a record that would take
one past it is not kept. Sessions' volumes are not kept here: they are read from the log
(``Usage.sessions``) when asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Generic, cast

from herald.retention import DAY_MS
from herald.store.dbapi import C
from herald.store.usage_records import DATA, DailyUsage, Traffic, UsageRecord

if TYPE_CHECKING:
    from herald.store.common import SQLStoreBase

DELETE_PDP_CONTEXT = 5
"""The event type whose ``detail.volume`` is a closed session's usage."""

_COLUMNS = (
    "id, organisation_id, provider, record_id, endpoint_id, traffic_type, start_ms, end_ms, "
    "day, rx, tx, total, received_ms, record"
)
_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
CHUNK = 500  # records per INSERT statement (14 parameters each)
_ADD = (
    "INSERT INTO usage_daily (organisation_id, endpoint_id, day, data_records, data_rx, "
    "data_tx, data_total, sms_mo, sms_mt, sms_total) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (organisation_id, endpoint_id, day) DO UPDATE SET "
    "data_records = usage_daily.data_records + excluded.data_records, "
    "data_rx = usage_daily.data_rx + excluded.data_rx, "
    "data_tx = usage_daily.data_tx + excluded.data_tx, "
    "data_total = usage_daily.data_total + excluded.data_total, "
    "sms_mo = usage_daily.sms_mo + excluded.sms_mo, "
    "sms_mt = usage_daily.sms_mt + excluded.sms_mt, "
    "sms_total = usage_daily.sms_total + excluded.sms_total"
)
_DAILY = "day, data_records, data_rx, data_tx, data_total, sms_mo, sms_mt, sms_total"
_SUMS = "data_records, data_rx, data_tx, data_total, sms_mo, sms_mt, sms_total"
MAX_DAILY = 2**63 - 1
"""The most each of an endpoint's day sums may hold: 9,223,372,036,854.775807 MB of data
(in millionths), as many SMS. A record that would pass it is refused, the rest kept."""
SUM_CHUNK = 300  # days per SELECT of the sums (3 parameters each)


Key = tuple[int, str, str]  # (organisation, provider, record id)
Day = tuple[int, int, int]  # (organisation, endpoint, day)


def _key(record: UsageRecord) -> Key:
    return (record.organisation_id, record.provider, record.record_id)


def _day(record: UsageRecord) -> Day:
    return (record.organisation_id, record.endpoint_id, record.day)


def _values(record: UsageRecord) -> tuple[object, ...]:
    return (
        record.id,
        record.organisation_id,
        record.provider,
        record.record_id,
        record.endpoint_id,
        record.traffic_type,
        record.start_ms,
        record.end_ms,
        record.day,
        record.rx,
        record.tx,
        record.total,
        record.received_ms,
        record.record,
    )


def _sums(record: UsageRecord) -> tuple[int, ...]:
    """The record's addition to its day: (data records, rx, tx, total, MO, MT, SMS total)."""
    if record.traffic_type == DATA:
        return (1, record.rx, record.tx, record.total, 0, 0, 0)
    return (0, 0, 0, 0, record.tx, record.rx, record.total)  # tx: sent by the device (MO)


class Usage(Generic[C]):
    """Each endpoint's usage records, kept once, and their sums per UTC day."""

    def __init__(self, db: SQLStoreBase[C]) -> None:
        self._db = db

    def save(self, records: Sequence[UsageRecord]) -> list[tuple[int, bool] | None]:
        """Keep each record once and add the new ones to their day's sums, in one
        transaction; per record its id (the kept one's, for a duplicate) and whether new,
        or None for a new record not kept: it would take a sum of its day past
        ``MAX_DAILY``."""
        if not records:
            return []
        kept: dict[Key, int] = {}
        fresh: dict[Key, UsageRecord] = {}
        with self._db.transaction() as conn:
            for begin in range(0, len(records), CHUNK):
                chunk = records[begin : begin + CHUNK]
                rows = self._db.execute(
                    conn,
                    f"INSERT INTO usage_records ({_COLUMNS}) VALUES "
                    f"{', '.join([_ROW] * len(chunk))} ON CONFLICT "
                    "(organisation_id, provider, record_id) DO NOTHING "
                    "RETURNING organisation_id, provider, record_id, id",
                    [value for record in chunk for value in _values(record)],
                ).fetchall()
                inserted = {(int(r[0]), str(r[1]), str(r[2])): int(r[3]) for r in rows}
                for record in chunk:  # the first of a key in the batch is the one inserted
                    key = _key(record)
                    if key in inserted and key not in fresh:
                        fresh[key] = record
                kept.update(inserted)
            missing = {_key(r) for r in records} - kept.keys()
            kept.update(self._kept_ids(conn, missing))
            totals = self._daily_sums(conn, {_day(r) for r in fresh.values()})
            sums: dict[Day, list[int]] = {}
            over: list[Key] = []
            for key, record in fresh.items():  # in the batch's order
                total = totals.setdefault(_day(record), [0] * 7)
                added = _sums(record)
                if any(t + a > MAX_DAILY for t, a in zip(total, added, strict=True)):
                    over.append(key)
                    continue
                day = sums.setdefault(_day(record), [0] * 7)
                for index, value in enumerate(added):
                    day[index] += value
                    total[index] += value
            if over:
                refused = [kept.pop(key) for key in over]
                for key in over:
                    del fresh[key]
                for ids in self._db.in_chunks(refused):
                    condition, params = self._db.any("id", tuple(ids))
                    self._db.execute(conn, f"DELETE FROM usage_records WHERE {condition}", params)
            if sums:  # both drivers' cursors batch this (psycopg in one pipeline)
                cast(Any, conn).cursor().executemany(
                    self._db.sql(_ADD), [(*where, *added) for where, added in sums.items()]
                )
        answered: set[Key] = set()
        result: list[tuple[int, bool] | None] = []
        for record in records:
            key = _key(record)
            if key not in kept:  # refused: a later copy in the batch is refused alike
                result.append(None)
                continue
            new = key in fresh and key not in answered
            answered.add(key)
            result.append((kept[key], new))
        return result

    def _daily_sums(self, conn: C, days: set[Day]) -> dict[Day, list[int]]:
        """The sums kept of these days (those that have any), locked until the transaction
        ends (PostgreSQL): another writer's additions come before or after, not between."""
        found: dict[Day, list[int]] = {}
        ordered = sorted(days)
        for begin in range(0, len(ordered), SUM_CHUNK):
            part = ordered[begin : begin + SUM_CHUNK]
            condition = " OR ".join(
                ["(organisation_id = ? AND endpoint_id = ? AND day = ?)"] * len(part)
            )
            rows = self._db.execute(
                conn,
                f"SELECT organisation_id, endpoint_id, day, {_SUMS} FROM usage_daily "
                f"WHERE {condition}{self._db.LOCK_ROW}",
                [value for day in part for value in day],
            ).fetchall()
            found.update({(int(r[0]), int(r[1]), int(r[2])): [int(v) for v in r[3:]] for r in rows})
        return found

    def _kept_ids(self, conn: C, keys: set[Key]) -> dict[Key, int]:
        """The ids of records kept before, by key."""
        by_source: dict[tuple[int, str], list[str]] = {}
        for organisation_id, provider, record_id in keys:
            by_source.setdefault((organisation_id, provider), []).append(record_id)
        found: dict[Key, int] = {}
        for (organisation_id, provider), record_ids in by_source.items():
            for begin in range(0, len(record_ids), CHUNK):
                part = record_ids[begin : begin + CHUNK]
                rows = self._db.execute(
                    conn,
                    "SELECT record_id, id FROM usage_records WHERE organisation_id = ? "
                    f"AND provider = ? AND record_id IN ({', '.join('?' * len(part))})",
                    [organisation_id, provider, *part],
                ).fetchall()
                found.update({(organisation_id, provider, str(r[0])): int(r[1]) for r in rows})
        return found

    def days(
        self, organisation_id: int, endpoint_id: int, first_day: int, last_day: int
    ) -> list[DailyUsage]:
        """The endpoint's summed usage records of the days ``first_day``..``last_day``
        (only days that have any), by day."""
        rows = self._db.read(
            lambda c: self._db.execute(
                c,
                f"SELECT {_DAILY} FROM usage_daily WHERE organisation_id = ? "
                "AND endpoint_id = ? AND day >= ? AND day <= ? ORDER BY day",
                (organisation_id, endpoint_id, first_day, last_day),
            ).fetchall()
        )
        return [DailyUsage(*(int(value) for value in row)) for row in rows]

    def since(self, organisation_id: int, endpoint_id: int, since_ms: int) -> list[Traffic]:
        """The endpoint's usage records that ended at or after ``since_ms``."""
        rows = self._db.read(
            lambda c: self._db.execute(
                c,
                "SELECT end_ms, traffic_type, rx, tx, total FROM usage_records "
                "WHERE organisation_id = ? AND endpoint_id = ? AND end_ms >= ? ORDER BY end_ms",
                (organisation_id, endpoint_id, since_ms),
            ).fetchall()
        )
        return [Traffic(*(int(value) for value in row)) for row in rows]

    def records(
        self, organisation_id: int, endpoint_id: int, start_ms: int, end_ms: int, limit: int
    ) -> list[bytes]:
        """The endpoint's usage records as the provider sent them that ended in
        ``[start_ms, end_ms)``, newest first, at most ``limit``."""
        rows = self._db.read(
            lambda c: self._db.execute(
                c,
                "SELECT record FROM usage_records WHERE organisation_id = ? AND endpoint_id = ? "
                "AND end_ms >= ? AND end_ms < ? ORDER BY end_ms DESC, id DESC LIMIT ?",
                (organisation_id, endpoint_id, start_ms, end_ms, limit),
            ).fetchall()
        )
        return [bytes(row[0]) for row in rows]

    def day_records(
        self, organisation_id: int, endpoint_id: int, first_day: int, last_day: int, limit: int
    ) -> list[tuple[int, int, bytes]]:
        """(day, traffic type, record as sent) of the endpoint's usage records of the days
        ``first_day``..``last_day``, the newest day first, at most ``limit``."""
        rows = self._db.read(
            lambda c: self._db.execute(
                c,
                "SELECT day, traffic_type, record FROM usage_records WHERE organisation_id = ? "
                "AND endpoint_id = ? AND day >= ? AND day <= ? ORDER BY day DESC LIMIT ?",
                (organisation_id, endpoint_id, first_day, last_day, limit),
            ).fetchall()
        )
        return [(int(row[0]), int(row[1]), bytes(row[2])) for row in rows]

    def sessions(
        self, organisation_id: int, endpoint_id: int, start_ms: int, end_ms: int
    ) -> list[tuple[int, bytes]]:
        """(time, stored record) of the endpoint's Delete PDP Context events in
        ``[start_ms, end_ms)``: the closed sessions, with their volume in the record."""
        rows = self._db.read(
            lambda c: self._db.execute(
                c,
                "SELECT ts, dictionary_id, body FROM events WHERE organisation_id = ? "
                "AND endpoint_id = ? AND ts >= ? AND ts < ? AND type_id = ? ORDER BY ts, id",
                (organisation_id, endpoint_id, start_ms, end_ms, DELETE_PDP_CONTEXT),
            ).fetchall()
        )
        return [(int(row[0]), self._db.unpack(row[1], bytes(row[2]))) for row in rows]

    def organisation(
        self, organisation_ids: tuple[int, ...] | None, endpoint_id: int
    ) -> int | None:
        """The lowest of the caller's organisations (None: any) that knows the endpoint: it
        has usage records of it, or events."""
        if organisation_ids is None:
            candidates: Sequence[int] = sorted(o.id for o in self._db.organisations.all())
        else:
            candidates = sorted(organisation_ids)

        def probe(conn: C) -> int | None:
            for organisation_id in candidates:
                for table in ("usage_daily", "events"):
                    found = self._db.execute(
                        conn,
                        f"SELECT 1 FROM {table} WHERE organisation_id = ? AND endpoint_id = ? "
                        "LIMIT 1",
                        (organisation_id, endpoint_id),
                    ).fetchone()
                    if found is not None:
                        return organisation_id
            return None

        return self._db.read(probe)

    def purge(self, now_ms: int) -> int:
        """Delete the usage of the days that have left their organisation's retention window
        (whole UTC days: records and sums go together, so the sums stay those of the kept
        records); how many records went."""
        deleted = 0
        for cutoff, organisation_ids in self._db.retention_cutoffs(now_ms).items():
            first_kept_day = cutoff // DAY_MS
            for ids in self._db.in_chunks(organisation_ids):
                condition, params = self._db.any("organisation_id", tuple(ids))
                with self._db.transaction() as conn:
                    args: list[Any] = [*params, first_kept_day]
                    deleted += self._db.execute(
                        conn, f"DELETE FROM usage_records WHERE {condition} AND day < ?", args
                    ).rowcount
                    self._db.execute(
                        conn, f"DELETE FROM usage_daily WHERE {condition} AND day < ?", args
                    )
        return deleted
