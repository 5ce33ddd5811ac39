"""The usage rule and emnify's shapes, as pure functions: each day's data comes from its
data usage records when it has any, else from the sessions closed that day; counted once."""

from __future__ import annotations

import random
from datetime import date

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.devices import usage
from herald.devices.service import InvalidParameter
from herald.retention import DAY_MS
from herald.store.usage_records import DATA, SMS, DailyUsage, Traffic

DAY = 20_000  # 2024-10-04


def closed(day: int, rx: int, tx: int, minute: int = 0) -> Traffic:
    return Traffic(day * DAY_MS + minute * 60_000, DATA, rx, tx, rx + tx)


def test_records_say_the_data_of_their_day_sessions_the_rest() -> None:
    records = [DailyUsage(DAY, 1, 10, 5, 15, 2, 1, 3)]
    sessions = [closed(DAY, 10, 5), closed(DAY + 1, 7, 1), closed(DAY + 1, 3, 0, 5)]
    first, second, third = usage.combine(DAY, DAY + 2, records, sessions)
    assert first == usage.DayUsage(DAY, 10, 5, 15, "records", 2, 1, 3)
    assert second == usage.DayUsage(DAY + 1, 10, 1, 11, "sessions")
    assert third == usage.DayUsage(DAY + 2) and not third.any


def test_a_day_with_only_sms_records_takes_its_data_from_sessions() -> None:
    (day,) = usage.combine(DAY, DAY, [DailyUsage(DAY, 0, 0, 0, 0, 1, 0, 1)], [closed(DAY, 4, 2)])
    assert (day.data_total, day.data_source, day.sms_mo) == (6, "sessions", 1)


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 10**9), st.integers(0, 10**9))))
def test_the_sums_do_not_depend_on_order(parts: list[tuple[int, int, int]]) -> None:
    sessions = [closed(DAY + d, rx, tx) for d, rx, tx in parts]
    shuffled = sessions[:]
    random.Random(len(parts)).shuffle(shuffled)
    assert usage.combine(DAY, DAY + 3, [], sessions) == usage.combine(DAY, DAY + 3, [], shuffled)
    total = sum(usage.combine(DAY, DAY + 3, [], sessions)[d].data_total for d in range(4))
    assert total == sum(rx + tx for _, rx, tx in parts)


@pytest.mark.parametrize(
    ("volume", "expected"),
    [
        ({"total": 0.641984, "rx": 0.418811, "tx": 0.223173}, (418_811, 223_173, 641_984)),
        ({"rx": "1.5", "tx": 0}, (1_500_000, 0, 1_500_000)),
        ({"rx": 0.0000005, "tx": 0.0000015}, (0, 2, 2)),  # half-even to 6 decimals
    ],
)
def test_a_sessions_volume(volume: dict[str, object], expected: tuple[int, int, int]) -> None:
    found = usage.session_traffic(5, orjson.dumps({"detail": {"volume": volume}}))
    assert found is not None and (found.rx, found.tx, found.total) == expected


@pytest.mark.parametrize(
    "record", [{}, {"detail": "x"}, {"detail": {"volume": {"rx": "?", "tx": None}}}, []]
)
def test_a_session_without_a_readable_volume_counts_nothing(record: object) -> None:
    assert usage.session_traffic(5, orjson.dumps(record)) is None


def test_daily_entries_in_emnifys_shape_with_exact_mb() -> None:
    entry = usage.daily_entry(usage.DayUsage(DAY, 418_811, 223_173, 641_984, "records", 2, 1, 3))
    assert entry == {
        "date": "2024-10-04",
        "data": {
            "volume": 0.641984,
            "volume_tx": 0.223173,
            "volume_rx": 0.418811,
            "traffic_type": {"id": DATA, "description": "Data", "unit": "MB"},
            "source": "records",
        },
        "sms": {
            "volume": 3,
            "volume_tx": 2,
            "volume_rx": 1,
            "traffic_type": {"id": SMS, "description": "SMS", "unit": "SMS"},
        },
    }


def test_a_month_without_traffic_is_left_out() -> None:
    month = date(2024, 10, 1)
    assert usage.month_entry(month, [usage.DayUsage(DAY)]) is None
    entry = usage.month_entry(month, [usage.DayUsage(DAY, 1, 2, 3, "sessions")])
    assert entry is not None and entry["data"]["volume"] == 0.000003
    assert entry["sms"]["month"] == "2024-10-01" and entry["sms"]["traffic_type_id"] == SMS


def test_the_last_hour_per_minute_by_the_same_rule() -> None:
    now = DAY * DAY_MS + 90 * 60_000
    records = [Traffic(now - 5 * 60_000 + 10, DATA, 1, 2, 3), Traffic(now - 1, SMS, 0, 1, 1)]
    sessions = [closed(DAY, 9, 9, 80), closed(DAY, 9, 9, 20)]  # the day has records
    hour = usage.last_hour(now, records, sessions, frozenset({DAY}))
    assert [m["volume"] for m in hour["data"]] == [0.000003]
    assert hour["sms"] == [
        {"time": "2024-10-04T01:29:00.000Z", "volume": 1, "volume_tx": 1, "volume_rx": 0}
    ]
    without = usage.last_hour(now, [], sessions, frozenset())
    assert [m["volume_rx"] for m in without["data"]] == [0.000009]  # 20 minutes: too old


def test_the_daily_range_as_emnify_reads_it() -> None:
    now = (date(2026, 11, 30) - usage.EPOCH).days * DAY_MS + 5
    days = (date(2026, 11, 1) - usage.EPOCH).days, (date(2026, 11, 30) - usage.EPOCH).days
    assert usage.daily_range({}, now) == days
    assert usage.daily_range({"end_date": "2026-10-10"}, now)[0] == days[0] - 31
    assert usage.daily_range({"start_date": "2026-11-01"}, now) == days
    for params, field in (
        ({"start_date": "2026-11-31"}, "start_date"),
        ({"start_date": "20261101"}, "start_date"),
        ({"start_date": "2026-W48-1"}, "start_date"),
        ({"start_date": "2026-11-02", "end_date": "2026-11-01"}, "start_date"),
        ({"start_date": "2024-01-01", "end_date": "2026-01-01"}, "end_date"),
        ({"from": "2026-11-01"}, "from"),
    ):
        with pytest.raises(InvalidParameter) as caught:
            usage.daily_range(params, now)
        assert caught.value.field == field
