"""The rules evaluator over a real store, on each backend: the time is given to each step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from herald import metrics
from herald.catalog import load_catalog
from herald.devices.projector import DeviceProjector
from herald.ids import IdGenerator
from herald.rules import alerts, changing
from herald.rules.evaluator import RuleEvaluator
from herald.rules.types import Condition, RuleSpec
from herald.rules.usage import RECHECK_MS
from herald.store import Store
from herald.store.usage_records import DATA, UsageRecord
from herald.timefmt import now_ms
from tests.store.conftest import EventFactory
from tests.support.waiting import readable, wait_until

MIN = 60_000
T = now_ms() - 60 * MIN  # an hour ago: the steps' clock runs from here


class Clock:
    """The time the evaluator's steps see, set by the test."""

    def __init__(self) -> None:
        self.ms = T

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def evaluator(store: Store, clock: Clock) -> RuleEvaluator:
    return RuleEvaluator(store, load_catalog(), IdGenerator(lambda: 1), clock=clock)


def at(clock: Clock, evaluator: RuleEvaluator, ms: int) -> None:
    """Evaluate the log and the groups due at ``ms``."""
    clock.ms = ms
    evaluator.catch_up()


def alert_records(store: Store, org: int, written: int = 0) -> list[dict[str, Any]]:
    """The organisation's alert events, once at least ``written`` can be read (PostgreSQL
    reads a commit once older transactions on the server have ended)."""

    def read() -> list[dict[str, Any]]:
        entries = store.log.read(0, 10_000, (org,))
        return [orjson.loads(e.body) for e in entries if e.type_id in alerts.TYPES]

    wait_until(lambda: len(read()) >= written, 30)
    return read()


def save(
    evaluator: RuleEvaluator,
    after_seq: int,
    cursor_seq: int,
    revisions: dict[int, int],
    stamp: tuple[int, int] | None = None,
) -> bool:
    """A step writing no groups, as the evaluator writes one: whether it was written."""
    saving = evaluator.store.rules.saving(after_seq, cursor_seq, revisions, stamp=stamp)
    return evaluator.writer.append_with([], saving) is not None


def post(
    store: Store,
    ids: Callable[[int], list[int]],
    events: list[Any],
) -> None:
    given = ids(len(events))
    store.log.append(events, given)
    readable(store, given)


def test_a_count_rule_fires_once_per_group_and_resolves(
    store: Store,
    make_event: EventFactory,
    ids: Callable[[int], list[int]],
    evaluator: RuleEvaluator,
    clock: Clock,
) -> None:
    a = store.organisations.create("A").id
    b = store.organisations.create("B").id
    three = Condition("count", window_ms=10 * MIN, count=3)
    rule = store.rules.create(a, RuleSpec("attach failures", "type:7", "endpoint", three))
    for org in (a, b):  # B has the same events and no rule
        post(
            store,
            ids,
            [make_event(org, T + i * MIN, 7, endpoint={"id": 7}) for i in range(3)]
            + [make_event(org, T + 3 * MIN, 3, endpoint={"id": 7})]  # not type 7
            + [make_event(org, T + i * MIN, 7, endpoint={"id": 8}) for i in range(2)],
        )
    at(clock, evaluator, T + 3 * MIN)
    at(clock, evaluator, T + 4 * MIN)  # still holding: no second firing
    (fired,) = alert_records(store, a, 1)
    assert fired["event_type"]["description"] == "Rule fired"
    assert fired["target"] == {"type": "endpoint", "id": "7"}
    assert fired["endpoint"]["id"] == 7
    assert fired["detail"]["rule"]["id"] == rule.id
    assert fired["detail"]["group"] == {"by": "endpoint", "key": "7"}
    assert fired["detail"]["count"] == 3
    assert fired["detail"]["first_event_id"] < fired["detail"]["last_event_id"]
    assert alert_records(store, b) == []
    (current,) = store.rules.alerts((a,))
    assert (current.rule_id, current.key) == (rule.id, "7")
    assert store.rules.alerts((b,)) == []

    at(clock, evaluator, T + 11 * MIN)  # the first event left the window: resolved by time
    assert [r["event_type"]["id"] for r in alert_records(store, a, 2)] == [2200, 2201]
    resolved = alert_records(store, a, 2)[1]
    assert resolved["detail"]["fired_seconds"] == 8 * 60
    assert store.rules.alerts((a,)) == []


def test_an_absence_rule_fires_on_time_without_events(
    store: Store,
    make_event: EventFactory,
    ids: Callable[[int], list[int]],
    evaluator: RuleEvaluator,
    clock: Clock,
) -> None:
    a = store.organisations.create("A").id
    store.rules.create(a, RuleSpec("silent", "", "endpoint", Condition("absence", 10 * MIN)))
    post(store, ids, [make_event(a, T, 3, endpoint={"id": 7})])
    at(clock, evaluator, T + 5 * MIN)
    assert alert_records(store, a) == []
    at(clock, evaluator, T + 10 * MIN)  # no event arrived: the timer pass fires it
    (fired,) = alert_records(store, a, 1)
    assert fired["detail"]["age_seconds"] == 600
    post(store, ids, [make_event(a, T + 12 * MIN, 3, endpoint={"id": 7})])
    at(clock, evaluator, T + 12 * MIN)
    assert [r["event_type"]["id"] for r in alert_records(store, a, 2)] == [2200, 2201]


def test_a_state_rule_and_its_hold_down(
    store: Store,
    make_event: EventFactory,
    ids: Callable[[int], list[int]],
    evaluator: RuleEvaluator,
    clock: Clock,
) -> None:
    a = store.organisations.create("A").id
    offline = Condition("state", window_ms=5 * MIN, statuses=("OFFLINE",))
    store.rules.create(a, RuleSpec("offline", "", "endpoint", offline, hold_down_ms=30 * MIN))
    post(
        store,
        ids,
        [make_event(a, T, 1, endpoint={"id": 7}), make_event(a, T + MIN, 15, endpoint={"id": 7})],
    )
    at(clock, evaluator, T + 6 * MIN)
    assert [r["event_type"]["id"] for r in alert_records(store, a, 1)] == [2200]
    post(store, ids, [make_event(a, T + 7 * MIN, 1, endpoint={"id": 7})])  # attached again
    at(clock, evaluator, T + 7 * MIN)
    post(store, ids, [make_event(a, T + 8 * MIN, 15, endpoint={"id": 7})])  # offline again
    at(clock, evaluator, T + 20 * MIN)  # holds, but held down until T + 37 min
    assert [r["event_type"]["id"] for r in alert_records(store, a, 2)] == [2200, 2201]
    at(clock, evaluator, T + 37 * MIN)
    assert [r["event_type"]["id"] for r in alert_records(store, a, 3)] == [2200, 2201, 2200]


def test_a_rule_changed_or_deleted_stops_firing_at_once(
    store: Store,
    make_event: EventFactory,
    ids: Callable[[int], list[int]],
    evaluator: RuleEvaluator,
    clock: Clock,
) -> None:
    a = store.organisations.create("A").id
    absence = Condition("absence", 10 * MIN)
    kept = store.rules.create(a, RuleSpec("kept", "", "organisation", absence))
    changed = store.rules.create(a, RuleSpec("changed", "", "organisation", absence))
    gone = store.rules.create(a, RuleSpec("gone", "", "organisation", absence))
    post(store, ids, [make_event(a, T, 3, endpoint={"id": 7})])
    at(clock, evaluator, T)
    writer = evaluator.writer
    changing.change(
        store, writer, changed, (a,), RuleSpec("changed", "type:9", "organisation", absence)
    )
    changing.change(store, writer, gone, (a,), None)
    at(clock, evaluator, T + 10 * MIN)
    (fired,) = alert_records(store, a, 1)
    assert fired["detail"]["rule"]["id"] == kept.id
    assert fired["target"] == {"type": "organisation", "id": str(a)}


def test_a_step_behind_another_writes_nothing(
    store: Store,
    make_event: EventFactory,
    ids: Callable[[int], list[int]],
    evaluator: RuleEvaluator,
    clock: Clock,
) -> None:
    a = store.organisations.create("A").id
    rule = store.rules.create(a, RuleSpec("any", "", "endpoint", Condition("count", MIN, 1)))
    post(store, ids, [make_event(a, T, 3, endpoint={"id": 7})])
    at(clock, evaluator, T)
    cursor = store.rules.position()
    assert len(alert_records(store, a, 1)) == 1
    assert not save(evaluator, cursor - 1, cursor + 1, {rule.id: rule.revision})  # stale
    assert store.rules.position() == cursor
    assert len(alert_records(store, a)) == 1


def test_two_evaluators_taking_turns_see_each_others_groups(
    store: Store,
    make_event: EventFactory,
    ids: Callable[[int], list[int]],
    evaluator: RuleEvaluator,
    clock: Clock,
) -> None:
    a = store.organisations.create("A").id
    other = RuleEvaluator(store, load_catalog(), IdGenerator(lambda: 2), clock=clock)
    once = Condition("count", MIN, 1)
    store.rules.create(a, RuleSpec("any", "", "endpoint", once, hold_down_ms=MIN // 2))
    post(store, ids, [make_event(a, T, 3, endpoint={"id": 7})])
    at(clock, evaluator, T)  # fires, and keeps the group firing
    at(clock, other, T + 2 * MIN)  # resolves it: what the first kept is no longer stored
    post(store, ids, [make_event(a, T + 3 * MIN, 3, endpoint={"id": 7})])
    at(clock, evaluator, T + 3 * MIN)  # fires again
    assert [r["event_type"]["id"] for r in alert_records(store, a, 3)] == [2200, 2201, 2200]


def test_a_step_whose_stamp_is_stale_writes_nothing(
    store: Store,
    make_event: EventFactory,
    ids: Callable[[int], list[int]],
    evaluator: RuleEvaluator,
    clock: Clock,
) -> None:
    a = store.organisations.create("A").id
    rule = store.rules.create(a, RuleSpec("any", "", "endpoint", Condition("count", MIN, 1)))
    post(store, ids, [make_event(a, T, 3, endpoint={"id": 7})])
    at(clock, evaluator, T)
    cursor, stamp = store.rules.stamped_position()
    assert stamp != 0
    revisions = {rule.id: rule.revision}
    assert not save(evaluator, cursor, cursor, revisions, stamp=(stamp + 1, 5))  # stale
    assert store.rules.stamped_position() == (cursor, stamp)
    assert save(evaluator, cursor, cursor, revisions, stamp=(stamp, 5))
    assert store.rules.stamped_position() == (cursor, 5)


def ingested() -> float:
    """herald_events_ingested_total of the events Herald writes itself."""
    found = metrics.REGISTRY.get_sample_value(
        "herald_events_ingested_total", {"provider": "herald"}
    )
    return found or 0.0


def test_a_rule_changed_or_deleted_resolves_its_open_alerts(
    store: Store,
    make_event: EventFactory,
    ids: Callable[[int], list[int]],
    evaluator: RuleEvaluator,
    clock: Clock,
) -> None:
    a = store.organisations.create("A").id
    silent = Condition("absence", 10 * MIN)
    changed = store.rules.create(a, RuleSpec("changed", "", "endpoint", silent))
    gone = store.rules.create(a, RuleSpec("gone", "", "endpoint", silent))
    post(store, ids, [make_event(a, T, 3, endpoint={"id": e}) for e in (7, 8)])
    at(clock, evaluator, T + 10 * MIN)  # both rules fire for both endpoints
    assert len(store.rules.alerts((a,))) == 4
    counted = ingested()
    spec = RuleSpec("changed", "type:3", "endpoint", silent)
    changing.change(store, evaluator.writer, changed, (a,), spec)
    changing.change(store, evaluator.writer, gone, (a,), None)
    assert ingested() == counted + 4
    assert store.rules.alerts((a,)) == []
    records = alert_records(store, a, 8)[4:]
    assert [r["event_type"]["id"] for r in records] == [2201] * 4
    reasons = {(r["detail"]["rule"]["id"], r["detail"]["reason"]) for r in records}
    assert reasons == {(changed.id, alerts.CHANGED), (gone.id, alerts.DELETED)}
    assert {r["endpoint"]["id"] for r in records} == {7, 8}
    at(clock, evaluator, T + 30 * MIN)  # the changed rule starts afresh: it knows 7 and 8
    again = alert_records(store, a, 10)[8:]
    assert {(r["detail"]["rule"]["id"], r["detail"]["rule"]["revision"]) for r in again} == {
        (changed.id, 2)
    }
    assert {r["endpoint"]["id"] for r in again} == {7, 8}


def test_a_rule_renamed_or_held_down_longer_keeps_its_alerts_a_disabled_one_resolves(
    store: Store,
    make_event: EventFactory,
    ids: Callable[[int], list[int]],
    evaluator: RuleEvaluator,
    clock: Clock,
) -> None:
    a = store.organisations.create("A").id
    silent = Condition("absence", 10 * MIN)
    rule = store.rules.create(a, RuleSpec("silent", "", "endpoint", silent))
    post(store, ids, [make_event(a, T, 3, endpoint={"id": 7})])
    at(clock, evaluator, T + 10 * MIN)
    assert len(alert_records(store, a, 1)) == 1
    renamed = RuleSpec("quiet trackers", "", "endpoint", silent, hold_down_ms=60 * MIN)
    changing.change(store, evaluator.writer, rule, (a,), renamed)
    kept = store.rules.get(rule.id)
    assert kept is not None and kept.spec == renamed and kept.revision == rule.revision
    assert [x.key for x in store.rules.alerts((a,))] == ["7"]
    post(store, ids, [make_event(a, T + 11 * MIN, 3, endpoint={"id": 7})])  # it speaks
    at(clock, evaluator, T + 11 * MIN)  # resolved by the evaluator, under the new name
    resolved = alert_records(store, a, 2)[1]
    assert resolved["detail"]["rule"] == {"id": rule.id, "name": "quiet trackers", "revision": 1}
    assert resolved["detail"]["reason"] == alerts.CLEARED
    at(clock, evaluator, T + 21 * MIN)  # silent again, but held down for an hour
    assert len(alert_records(store, a)) == 2
    at(clock, evaluator, T + 71 * MIN)
    assert len(alert_records(store, a, 3)) == 3
    disabled = RuleSpec("quiet trackers", "", "endpoint", silent, 60 * MIN, enabled=False)
    changing.change(store, evaluator.writer, kept, (a,), disabled)
    records = alert_records(store, a, 4)
    assert [r["event_type"]["id"] for r in records] == [2200, 2201, 2200, 2201]
    assert records[3]["detail"]["reason"] == alerts.DISABLED
    assert store.rules.alerts((a,)) == []
    changing.change(store, evaluator.writer, kept, (a,), disabled)  # again: nothing more
    assert len(alert_records(store, a)) == 4


def test_a_steps_alerts_of_a_rule_changed_meanwhile_are_dropped_and_counted_once(
    store: Store,
    make_event: EventFactory,
    ids: Callable[[int], list[int]],
    evaluator: RuleEvaluator,
    clock: Clock,
) -> None:
    a = store.organisations.create("A").id
    once = Condition("count", MIN, 1)
    kept = store.rules.create(a, RuleSpec("kept", "", "endpoint", once))
    changed = store.rules.create(a, RuleSpec("changed", "", "endpoint", once))
    post(store, ids, [make_event(a, T, 3, endpoint={"id": 7})])
    clock.ms = T
    after = evaluator.position()
    entries = store.log.read(after, 100)
    output = evaluator.evaluate(entries)
    assert {rule_id for rule_id, _ in output.alerts} == {kept.id, changed.id}
    restarted = RuleSpec("changed", "type:3", "endpoint", once)
    changing.change(store, evaluator.writer, changed, (a,), restarted)  # meanwhile
    counted = ingested()
    assert evaluator.advance(after, entries[-1].seq, output)
    assert ingested() == counted + 1
    (fired,) = alert_records(store, a, 1)
    assert fired["detail"]["rule"]["id"] == kept.id
    assert [alert.rule_id for alert in store.rules.alerts((a,))] == [kept.id]
    assert not evaluator.advance(after, entries[-1].seq, output)  # a repeat writes nothing
    assert ingested() == counted + 1


def test_an_absence_per_endpoint_knows_the_endpoints_silent_since_before_it(
    store: Store,
    make_event: EventFactory,
    ids: Callable[[int], list[int]],
    evaluator: RuleEvaluator,
    clock: Clock,
) -> None:
    a = store.organisations.create("A").id
    b = store.organisations.create("B").id
    post(
        store,
        ids,
        [
            make_event(a, T, 3, endpoint={"id": 7}),
            make_event(a, T + MIN, 5, endpoint={"id": 7}),
            make_event(a, T - 2 * MIN, 3, endpoint={"id": 8}),
            make_event(b, T, 3, endpoint={"id": 9}),  # another organisation's
        ],
    )
    DeviceProjector(store).catch_up()  # endpoints 7 and 8 have a device state
    silent = Condition("absence", 10 * MIN)
    every = store.rules.create(a, RuleSpec("any event", "", "endpoint", silent))
    typed = store.rules.create(a, RuleSpec("type 3", "type:3", "endpoint", silent))
    store.rules.create(a, RuleSpec("type 9", "type:9", "endpoint", silent))  # none known
    capped = store.rules.create(a, RuleSpec("capped", "type:3", "endpoint", silent), None, 1)
    assert store.rules.group_counts((a,)) == {every.id: 2, typed.id: 2, capped.id: 1}
    at(clock, evaluator, T + 9 * MIN)  # endpoint 8's last event, of type 3, at T - 2 min
    fired = {(r["detail"]["rule"]["id"], r["endpoint"]["id"]) for r in alert_records(store, a, 2)}
    assert fired == {(every.id, 8), (typed.id, 8)}
    at(clock, evaluator, T + 11 * MIN)  # no event since the rules were made
    records = alert_records(store, a, 5)
    fired = {(r["detail"]["rule"]["id"], r["endpoint"]["id"]) for r in records}
    assert fired == {(every.id, 7), (every.id, 8), (typed.id, 7), (typed.id, 8), (capped.id, 7)}
    by = {(r["detail"]["rule"]["id"], r["endpoint"]["id"]): r["detail"] for r in records}
    assert by[(every.id, 7)]["age_seconds"] == 600  # its last event, of any type, at T + 1 min
    assert by[(typed.id, 7)]["age_seconds"] == 660  # its last of type 3, at T
    assert by[(typed.id, 7)]["last_event_id"] is None  # known from before the rule
    assert alert_records(store, b) == []
    changed = store.rules.get(typed.id)
    assert changed is not None  # an edit knows them again: its alerts resolved, then fired
    spec = RuleSpec("type 3", "type:3", "endpoint", Condition("absence", 20 * MIN))
    changing.change(store, evaluator.writer, changed, (a,), spec)
    assert store.rules.group_counts((a,))[typed.id] == 2
    at(clock, evaluator, T + 19 * MIN)  # endpoint 8: 21 min of silence
    at(clock, evaluator, T + 21 * MIN)  # endpoint 7: 21 min too
    again = [r for r in alert_records(store, a, 9) if r["detail"]["rule"]["id"] == typed.id]
    assert sorted((r["event_type"]["id"], r["endpoint"]["id"]) for r in again[2:4]) == [
        (2201, 7),
        (2201, 8),
    ]
    assert [(r["event_type"]["id"], r["endpoint"]["id"]) for r in again[4:]] == [
        (2200, 8),
        (2200, 7),
    ]
    assert {r["detail"]["rule"]["revision"] for r in again[4:]} == {2}


def usage_record(org: int, record_id: int, end_ms: int, megabytes: float) -> UsageRecord:
    units = round(megabytes * 1_000_000)
    return UsageRecord(
        id=record_id,
        organisation_id=org,
        provider="1nce",
        record_id=str(record_id),
        endpoint_id=7,
        traffic_type=DATA,
        start_ms=None,
        end_ms=end_ms,
        day=end_ms // (24 * 60 * MIN),
        rx=units,
        tx=0,
        total=units,
        received_ms=end_ms,
        record=b"{}",
    )


def test_a_threshold_counts_a_days_usage_records_instead_of_its_sessions(
    store: Store,
    make_event: EventFactory,
    ids: Callable[[int], list[int]],
    evaluator: RuleEvaluator,
    clock: Clock,
) -> None:
    a = store.organisations.create("A").id
    day = 24 * 60 * MIN
    noon = (now_ms() - day) // day * day + day // 2  # yesterday, 12:00 UTC
    heavy = Condition("threshold", megabytes=1.0, period="day")
    store.rules.create(a, RuleSpec("heavy", "", "endpoint", heavy))

    def session(at: int, megabytes: float) -> Any:
        volume = {"rx": megabytes, "tx": 0, "total": megabytes}
        return make_event(a, at, 5, endpoint={"id": 7}, detail={"volume": volume})

    post(store, ids, [session(noon - day, 5.0), session(noon, 0.75)])  # the day before: apart
    at(clock, evaluator, noon + MIN)
    assert alert_records(store, a) == []  # 0.75 MB today
    # the provider's records of the day say 0.5 MB (the session's traffic included): they
    # alone are its usage, and they come in without a session closing
    store.usage.save([usage_record(a, 1, noon + MIN, 0.5)])
    post(store, ids, [session(noon + 2 * MIN, 0.5)])  # 1.25 MB of sessions: no alert
    at(clock, evaluator, noon + 2 * MIN)
    assert alert_records(store, a) == []
    store.usage.save([usage_record(a, 2, noon + 3 * MIN, 0.75)])  # 1.25 MB of records
    at(clock, evaluator, noon + 3 * MIN)  # not read before the group's recheck
    assert alert_records(store, a) == []
    at(clock, evaluator, noon + 2 * MIN + RECHECK_MS)
    (fired,) = alert_records(store, a, 1)
    assert fired["detail"]["megabytes"] == 1.25
    at(clock, evaluator, noon - noon % day + day)  # the day ends: resolved
    assert [r["event_type"]["id"] for r in alert_records(store, a, 2)] == [2200, 2201]


def refused_metric() -> float:
    found = metrics.REGISTRY.get_sample_value("herald_rule_groups_refused_total")
    return found or 0.0


def test_the_groups_refused_at_the_limit_are_counted_once_each(
    store: Store,
    make_event: EventFactory,
    ids: Callable[[int], list[int]],
    clock: Clock,
) -> None:
    a = store.organisations.create("A").id
    evaluator = RuleEvaluator(
        store, load_catalog(), IdGenerator(lambda: 1), max_groups=2, clock=clock
    )
    once = Condition("count", MIN, 1)
    rule = store.rules.create(a, RuleSpec("any", "", "endpoint", once), None, 2)
    counted = refused_metric()
    post(store, ids, [make_event(a, T, 3, endpoint={"id": e}) for e in range(1, 6)])
    at(clock, evaluator, T)
    assert store.rules.group_counts((a,)) == {rule.id: 2}
    (refused,) = store.rules.refused((a,)).items()
    assert refused[0] == rule.id and refused[1].groups == 2  # of 3: counted up to the limit
    assert refused_metric() == counted + 2
    post(store, ids, [make_event(a, T + MIN, 3, endpoint={"id": e}) for e in (4, 5, 6, 7)])
    at(clock, evaluator, T + MIN)
    assert store.rules.refused((a,))[rule.id].groups == 2
    assert store.rules.refused((a,))[rule.id].since_ms == refused[1].since_ms
    other = RuleEvaluator(store, load_catalog(), IdGenerator(lambda: 2), max_groups=2, clock=clock)
    post(store, ids, [make_event(a, T + 2 * MIN, 3, endpoint={"id": 5})])
    at(clock, other, T + 2 * MIN)  # another process: nothing counted twice
    assert store.rules.refused((a,))[rule.id].groups == 2
    assert refused_metric() == counted + 2
    spec = RuleSpec("any", "type:3", "endpoint", once)
    changing.change(store, evaluator.writer, rule, (a,), spec, max_groups=2)
    assert store.rules.refused((a,)) == {}
