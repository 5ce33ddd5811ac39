"""An endpoint's usage per UTC day, from usage records and closed sessions, counted once.

Two sources tell a day's data usage: the providers' data usage records (summed as they are
stored, ``store/usage.py``) and the volume a Delete PDP Context event reports for the session
it closes (read from the log). A provider that sends usage records also sends one when a
session closes, with that session's traffic, so the two overlap. The rule, per endpoint and
UTC day: **if the day has any data usage record, the records alone are its data usage;
otherwise the sessions closed that day are.** Each source is a sum that does not depend on
order or on repeats (records are kept once per id; an event once per id), so the answer is
the same whatever order things came in, and after any replay. SMS come from SMS usage
records only. Pure functions; no I/O.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

import orjson

from herald.devices.answers import (
    TrafficType,
    UsageDay,
    UsageHour,
    UsageMinute,
    UsageMonth,
    UsageMonthVolume,
    UsageVolume,
)
from herald.devices.service import InvalidParameter
from herald.ingest.usage import MAX_UNITS, UNITS_PER_MB
from herald.retention import DAY_MS, MAX_RETENTION_DAYS
from herald.store.usage_records import DATA, SMS, DailyUsage, Traffic
from herald.timefmt import format_ms

EPOCH = date(1970, 1, 1)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
MINUTE_MS = 60_000
RECORDS, SESSIONS = "records", "sessions"
TRAFFIC_TYPES: dict[int, TrafficType] = {
    DATA: {"id": DATA, "description": "Data", "unit": "MB"},
    SMS: {"id": SMS, "description": "SMS", "unit": "SMS"},
}


@dataclass(frozen=True, slots=True)
class DayUsage:
    """One day's usage after the rule; data in millionths of a MB. ``data_source``: which
    source gave the data (``records``, ``sessions``, None for neither)."""

    day: int
    data_rx: int = 0
    data_tx: int = 0
    data_total: int = 0
    data_source: str | None = None
    sms_mo: int = 0
    sms_mt: int = 0
    sms_total: int = 0

    @property
    def any(self) -> bool:
        return self.data_source is not None or self.sms_total > 0 or self.sms_mo + self.sms_mt > 0


def day_of(ms: int) -> int:
    """The UTC day (days since 1970) of a time in ms."""
    return ms // DAY_MS


def iso_day(day: int) -> str:
    return (EPOCH + timedelta(days=day)).isoformat()


def session_traffic(at_ms: int, body: bytes) -> Traffic | None:
    """A Delete PDP Context's ``detail.volume`` (MB, rounded half-even to 6 decimals), or
    None without a readable one."""
    record = orjson.loads(body)
    detail = record.get("detail") if isinstance(record, dict) else None
    volume = detail.get("volume") if isinstance(detail, Mapping) else None
    if not isinstance(volume, Mapping):
        return None
    rx, tx = _mb_units(volume.get("rx")), _mb_units(volume.get("tx"))
    total = _mb_units(volume.get("total"))
    if rx is None and tx is None and total is None:
        return None
    rx, tx = rx or 0, tx or 0
    return Traffic(at_ms, DATA, rx, tx, rx + tx if total is None else total)


def _mb_units(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except InvalidOperation:
        return None
    if not number.is_finite() or number < 0 or number * UNITS_PER_MB > MAX_UNITS:
        return None
    return int((number * UNITS_PER_MB).to_integral_value(ROUND_HALF_EVEN))


def combine(
    first_day: int, last_day: int, records: Iterable[DailyUsage], sessions: Iterable[Traffic]
) -> list[DayUsage]:
    """Each day of ``first_day``..``last_day`` after the rule (see the module)."""
    by_day = {row.day: row for row in records}
    closed: dict[int, list[Traffic]] = {}
    for traffic in sessions:
        closed.setdefault(day_of(traffic.at_ms), []).append(traffic)
    days: list[DayUsage] = []
    for day in range(first_day, last_day + 1):
        kept = by_day.get(day, DailyUsage(day))
        data: tuple[int, int, int, str | None]
        if kept.data_records:
            data = (kept.data_rx, kept.data_tx, kept.data_total, RECORDS)
        elif day in closed:
            found = closed[day]
            data = (
                sum(t.rx for t in found),
                sum(t.tx for t in found),
                sum(t.total for t in found),
                SESSIONS,
            )
        else:
            data = (0, 0, 0, None)
        rx, tx, total, source = data
        days.append(DayUsage(day, rx, tx, total, source, kept.sms_mo, kept.sms_mt, kept.sms_total))
    return days


def record_days(records: Iterable[DailyUsage]) -> frozenset[int]:
    """The days whose data usage the records alone say."""
    return frozenset(row.day for row in records if row.data_records)


def _mb(units: int) -> float:
    return units / UNITS_PER_MB  # correctly rounded: prints the 6 decimals exactly


def _volume(traffic_type: int, rx: int, tx: int, total: int) -> UsageVolume:
    if traffic_type == DATA:
        return {"volume": _mb(total), "volume_tx": _mb(tx), "volume_rx": _mb(rx)}
    return {"volume": total, "volume_tx": tx, "volume_rx": rx}


def daily_entry(day: DayUsage) -> UsageDay:
    """One day as emnify's ``/stats/daily`` answers it (``data.source``: Herald's note of
    which source gave the data)."""
    return {
        "date": iso_day(day.day),
        "data": {
            **_volume(DATA, day.data_rx, day.data_tx, day.data_total),
            "traffic_type": TRAFFIC_TYPES[DATA],
            "source": day.data_source,
        },
        "sms": {
            **_volume(SMS, day.sms_mt, day.sms_mo, day.sms_total),
            "traffic_type": TRAFFIC_TYPES[SMS],
        },
    }


def month_entry(month: date, days: Sequence[DayUsage]) -> UsageMonth | None:
    """A month's sums as emnify's ``/stats`` writes ``last_month`` and ``current_month``;
    None without traffic (emnify then leaves the key out)."""
    if not any(day.any for day in days):
        return None

    def volume(kind: int, rx: int, tx: int, total: int) -> UsageMonthVolume:
        return {
            "month": month.isoformat(),
            **_volume(kind, rx, tx, total),
            "traffic_type_id": kind,
            "traffic_type": TRAFFIC_TYPES[kind],
        }

    return {
        "data": volume(
            DATA,
            sum(d.data_rx for d in days),
            sum(d.data_tx for d in days),
            sum(d.data_total for d in days),
        ),
        "sms": volume(
            SMS,
            sum(d.sms_mt for d in days),
            sum(d.sms_mo for d in days),
            sum(d.sms_total for d in days),
        ),
    }


def last_hour(
    now_ms: int, records: Iterable[Traffic], sessions: Iterable[Traffic], by_records: frozenset[int]
) -> UsageHour:
    """The last 60 minutes per minute (only minutes with traffic), data and SMS apart, by
    the same rule: a session counts only on a day without data usage records."""
    since = now_ms - 60 * MINUTE_MS
    minutes: dict[int, dict[int, list[int]]] = {DATA: {}, SMS: {}}
    counted = [
        *(t for t in records if t.at_ms >= since),
        *(t for t in sessions if t.at_ms >= since and day_of(t.at_ms) not in by_records),
    ]
    for traffic in counted:
        minute = traffic.at_ms - traffic.at_ms % MINUTE_MS
        sums = minutes[traffic.traffic_type].setdefault(minute, [0, 0, 0])
        sums[0] += traffic.rx
        sums[1] += traffic.tx
        sums[2] += traffic.total

    def per_minute(kind: int) -> list[UsageMinute]:
        return [
            {"time": format_ms(minute), **_volume(kind, *minutes[kind][minute])}
            for minute in sorted(minutes[kind])
        ]

    return {"data": per_minute(DATA), "sms": per_minute(SMS)}


def month_start(day: date) -> date:
    return day.replace(day=1)


def month_days(month: date) -> tuple[int, int]:
    """The first and last day (days since 1970) of ``month``."""
    last = calendar.monthrange(month.year, month.month)[1]
    return (month - EPOCH).days, (month.replace(day=last) - EPOCH).days


def today(now_ms: int) -> date:
    return datetime.fromtimestamp(now_ms / 1000, UTC).date()


def _date(params: Mapping[str, str], name: str) -> date | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        if not _DATE.fullmatch(raw):  # fromisoformat also takes 20261101 and 2026-W48-1
            raise ValueError
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidParameter(name, "must be a date YYYY-MM-DD, e.g. 2026-11-01") from None


def daily_range(params: Mapping[str, str], now_ms: int) -> tuple[int, int]:
    """The days ``start_date``..``end_date`` ask for, as emnify reads them: neither is the
    current month up to today; ``start_date`` alone runs to today; ``end_date`` alone is its
    month up to it. At most ``MAX_RETENTION_DAYS`` days."""
    unknown = sorted(set(params) - {"start_date", "end_date"})
    if unknown:
        raise InvalidParameter(unknown[0], "unknown parameter (known: end_date, start_date)")
    start, end = _date(params, "start_date"), _date(params, "end_date")
    now = today(now_ms)
    if end is None:
        end = now if start is None or start <= now else start
    if start is None:
        start = month_start(end)
    if start > end:
        raise InvalidParameter("start_date", "must not be after end_date")
    if (end - start).days + 1 > MAX_RETENTION_DAYS:
        raise InvalidParameter("end_date", f"at most {MAX_RETENTION_DAYS} days from start_date")
    return (start - EPOCH).days, (end - EPOCH).days
