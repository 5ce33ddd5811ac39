"""The conditions' logic, given the time: no clock is read."""

from __future__ import annotations

from typing import Any

import orjson

from herald.devices import state as device_state
from herald.rules import conditions
from herald.rules.conditions import Seen
from herald.rules.types import Condition

MIN = 60_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % 86_400_000  # a UTC midnight


def seen(minute: float, event_id: int = 1, type_id: int = 7, **record: Any) -> Seen:
    at = T0 + int(minute * MIN)
    return Seen(event_id, type_id, at, orjson.dumps(record), record)


def at(minute: float) -> int:
    return T0 + int(minute * MIN)


def test_count_holds_while_the_latest_n_are_within_the_window() -> None:
    five_in_ten = Condition("count", window_ms=10 * MIN, count=5)
    state: dict[str, Any] = {}
    for minute in (0, 3, 6, 9):
        conditions.observe(five_in_ten, state, seen(minute, int(minute)))
    assert not conditions.holds(five_in_ten, state, at(9))  # four
    conditions.observe(five_in_ten, state, seen(9.5, 95))
    assert conditions.holds(five_in_ten, state, at(9.5))
    assert conditions.measure(five_in_ten, state, at(9.5)) == {
        "count": 5,
        "first_event_id": 0,
        "last_event_id": 95,
    }
    assert state["hit"]  # the step that saw it fires even if it runs late
    conditions.settle(five_in_ten, state)
    assert conditions.due(five_in_ten, state, at(9.5)) == at(10) + 1  # minute 0 leaves
    assert not conditions.holds(five_in_ten, state, at(10) + 1)
    conditions.prune(five_in_ten, state, at(10) + 1)
    assert len(state["times"]) == 4
    conditions.prune(five_in_ten, state, at(30))
    assert conditions.idle(five_in_ten, state)


def test_count_keeps_only_the_latest_n_in_time_order() -> None:
    three = Condition("count", window_ms=10 * MIN, count=3)
    state: dict[str, Any] = {}
    for minute, event_id in ((5, 5), (1, 1), (7, 7), (6, 6), (2, 2)):  # out of order
        conditions.observe(three, state, seen(minute, event_id))
    assert [t[1] for t in state["times"]] == [5, 6, 7]


def test_a_count_holds_while_its_events_are_in_the_window_of_now() -> None:
    two = Condition("count", window_ms=MIN, count=2)
    state: dict[str, Any] = {}
    conditions.observe(two, state, seen(0, 1))
    conditions.observe(two, state, seen(0.5, 2))
    conditions.settle(two, state)
    assert conditions.holds(two, state, at(0.5))
    assert not conditions.holds(two, state, at(60))  # an hour on


def test_absence_holds_a_window_after_the_last_event() -> None:
    six_hours = Condition("absence", window_ms=360 * MIN)
    state: dict[str, Any] = {}
    assert not conditions.holds(six_hours, state, at(0))  # never seen: not a known group
    conditions.observe(six_hours, state, seen(10, 2))
    conditions.observe(six_hours, state, seen(5, 1))  # older: changes nothing
    assert conditions.due(six_hours, state, at(10)) == at(370)
    assert not conditions.holds(six_hours, state, at(369))
    assert conditions.holds(six_hours, state, at(370))
    assert conditions.measure(six_hours, state, at(400)) == {
        "age_seconds": 390 * 60,
        "last_event_id": 2,
    }
    assert not conditions.idle(six_hours, state)


def test_state_holds_once_the_status_has_lasted_the_window() -> None:
    offline = Condition("state", window_ms=30 * MIN, statuses=("OFFLINE",))
    state: dict[str, Any] = {}
    conditions.observe(offline, state, seen(0, 1, type_id=1))  # Update location: attached
    assert state["status"] == "ATTACHED" and state["since"] is None
    conditions.observe(offline, state, seen(10, 2, type_id=15))  # Purge location: offline
    assert state["status"] == "OFFLINE" and state["since"] == at(10)
    assert conditions.due(offline, state, at(10)) == at(40)
    assert not conditions.holds(offline, state, at(39))
    assert conditions.holds(offline, state, at(40))
    conditions.observe(offline, state, seen(50, 3, type_id=1))
    assert not conditions.holds(offline, state, at(100))


def test_a_state_window_of_zero_holds_at_once() -> None:
    blocked = Condition("state", window_ms=0, statuses=("BLOCKED",))
    state: dict[str, Any] = {}
    conditions.observe(blocked, state, seen(0, 1, type_id=11))  # Endpoint blocked
    assert state["status"] == "BLOCKED"
    assert conditions.holds(blocked, state, at(0))


def test_threshold_sums_the_periods_sessions_and_ends_with_it() -> None:
    hundred = Condition("threshold", megabytes=100, period="day")
    state: dict[str, Any] = {}
    volume = {"detail": {"volume": {"rx": 30, "tx": 30, "total": 60}}}
    conditions.observe(hundred, state, seen(10, 1, type_id=5, **volume))
    assert not conditions.holds(hundred, state, at(11))
    conditions.observe(hundred, state, seen(20, 2, type_id=5, **volume))
    conditions.observe(hundred, state, seen(-20, 3, type_id=5, **volume))  # yesterday's
    assert conditions.holds(hundred, state, at(21))
    assert conditions.measure(hundred, state, at(21))["megabytes"] == 120
    assert conditions.due(hundred, state, at(21)) == at(24 * 60)
    assert not conditions.holds(hundred, state, at(24 * 60))  # a new day
    conditions.observe(hundred, state, seen(24 * 60 + 1, 4, type_id=5, **volume))
    assert state["units"] == 60_000_000  # started again


def test_threshold_takes_a_days_usage_records_instead_of_its_sessions() -> None:
    month = Condition("threshold", megabytes=100, period="month")
    state: dict[str, Any] = {}
    volume = {"detail": {"volume": {"rx": 30, "tx": 30, "total": 60}}}
    conditions.observe(month, state, seen(10, 1, type_id=5, **volume))
    conditions.observe(month, state, seen(24 * 60 + 10, 2, type_id=5, **volume))
    conditions.observe(month, state, seen(20, 3, type_id=7, **volume))  # closes no session
    assert state["units"] == 120_000_000
    today = at(24 * 60 + 20)
    day = today // conditions.DAY_MS
    conditions.take_records(month, state, {day: 5_000_000, day - 40: 9}, today)
    assert state["units"] == 65_000_000  # yesterday's session, today's records
    assert not conditions.holds(month, state, today)
    conditions.take_records(month, state, {day: 45_000_000, day - 1: 70_000_000}, today)
    assert conditions.measure(month, state, today)["megabytes"] == 115
    assert conditions.holds(month, state, today)
    conditions.take_records(month, state, {}, conditions.period_end("month", state["period"]))
    assert state == {}  # a new month without usage: nothing kept
    conditions.take_records(month, state, {day: 5_000_000}, today)  # records come first
    conditions.observe(month, state, seen(24 * 60 + 30, 5, type_id=5, **volume))
    assert state["units"] == 5_000_000


def test_month_periods() -> None:
    start = conditions.period_start("month", T0)
    end = conditions.period_end("month", start)
    assert start <= T0 < end
    assert conditions.period_start("month", end) == end
    assert conditions.period_start("month", end - 1) == start


def test_an_events_device_facts_are_worked_out_once_and_without_its_values() -> None:
    event = seen(0, type_id=2, endpoint={"id": 1, "name": "tracker"}, sim={"iccid": "8988"})
    effect = event.device_effect()
    assert event.device_effect() is effect  # shared by every state rule that sees it
    full = device_state.effect(
        device_state.DeviceEvent(event.event_id, 2, event.timestamp_ms, event.record)
    )
    assert effect.facts == full.facts == (device_state.PS_ATTACH,)
    assert full.values and effect.values == {}  # the status needs the facts alone


def test_a_shared_event_folds_into_each_state_rules_group_alike() -> None:
    offline = Condition("state", window_ms=30 * MIN, statuses=("OFFLINE",))
    blocked = Condition("state", window_ms=0, statuses=("BLOCKED",))
    first: dict[str, Any] = {}
    second: dict[str, Any] = {}
    event = seen(0, type_id=2)
    conditions.observe(offline, first, event)
    conditions.observe(blocked, second, event)
    assert first["status"] == second["status"]
    assert first["last"] == second["last"] == 1
