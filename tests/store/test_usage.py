"""Usage's store methods, on each backend: records kept once, sums in the same transaction,
sessions read from the log, scoping, and retention by whole days."""

from __future__ import annotations

import itertools

import orjson

from herald.retention import DAY_MS
from herald.store import Store
from herald.store.usage import MAX_DAILY
from herald.store.usage_records import DATA, SMS, DailyUsage, Traffic, UsageRecord
from herald.timefmt import now_ms
from tests.store.conftest import EventFactory

_IDS = itertools.count(1)


def record(
    organisation_id: int, record_id: str, end_ms: int, rx: int, tx: int, traffic: int = DATA
) -> UsageRecord:
    return UsageRecord(
        id=next(_IDS),
        organisation_id=organisation_id,
        provider="1nce",
        record_id=record_id,
        endpoint_id=7,
        traffic_type=traffic,
        start_ms=None,
        end_ms=end_ms,
        day=end_ms // DAY_MS,
        rx=rx,
        tx=tx,
        total=rx + tx,
        received_ms=end_ms,
        record=orjson.dumps({"id": record_id}),
    )


def saved(store: Store, records: list[UsageRecord]) -> list[tuple[int, bool]]:
    """``save_usage`` of records that all fit their days' sums."""
    result = store.usage.save(records)
    kept = [outcome for outcome in result if outcome is not None]
    assert len(kept) == len(result), result
    return kept


def test_records_are_kept_once_and_summed_per_day(store: Store) -> None:
    acme, other = store.organisations.create("Acme").id, store.organisations.create("Other").id
    yesterday = now_ms() // DAY_MS - 1
    at = yesterday * DAY_MS + 3_600_000
    batch = [
        record(acme, "1", at, 418_811, 223_173),
        record(acme, "2", at + 60_000, 1, 0),
        record(acme, "3", at, 0, 1, SMS),  # MO
        record(acme, "4", at, 1, 0, SMS),  # MT
        record(other, "1", at, 5, 5),  # the same record id in another organisation
    ]
    first = saved(store, batch)
    assert [new for _, new in first] == [True] * 5
    again = saved(store, [record(acme, "2", at, 999, 999), record(acme, "5", at, 10, 20)])
    assert again[0] == (first[1][0], False)  # the kept record's id; its volume not added
    assert again[1][1] is True
    twice = saved(store, [record(acme, "6", at, 1, 1), record(acme, "6", at, 50, 50)])
    assert twice == [(twice[0][0], True), (twice[0][0], False)]  # once within a batch too
    assert store.usage.days(acme, 7, yesterday - 1, yesterday) == [
        DailyUsage(yesterday, 4, 418_823, 223_194, 642_017, 1, 1, 2)
    ]
    assert store.usage.days(other, 7, yesterday, yesterday)[0].data_total == 10
    assert store.usage.days(acme, 8, yesterday, yesterday) == []
    assert store.usage.since(acme, 7, at + 1) == [Traffic(at + 60_000, DATA, 1, 0, 1)]
    assert store.usage.organisation((acme, other), 7) == acme
    assert store.usage.organisation((other,), 7) == other
    assert store.usage.organisation(None, 7) == acme
    assert store.usage.organisation((acme,), 8) is None


def test_sessions_are_read_from_the_log(store: Store, make_event: EventFactory) -> None:
    acme, other = store.organisations.create("Acme").id, store.organisations.create("Other").id
    at = now_ms() - 3_600_000
    volume = {"detail": {"volume": {"rx": 0.5, "tx": 0.25, "total": 0.75}}}
    endpoint = {"endpoint": {"id": 7, "name": "tracker-7"}}
    store.log.append(
        [
            make_event(acme, at, 5, **endpoint, **volume),
            make_event(acme, at + 1, 3, **endpoint),  # not a closed session
            make_event(other, at, 5, **endpoint, **volume),
            make_event(acme, at, 5, endpoint={"id": 8}, **volume),
        ],
        list(range(9_000_000, 9_000_004)),
    )
    found = store.usage.sessions(acme, 7, at - 1, at + 10)
    assert [(ts, orjson.loads(body)["detail"]["volume"]["total"]) for ts, body in found] == [
        (at, 0.75)
    ]
    assert store.usage.sessions(acme, 7, at + 1, at + 10) == []
    assert store.usage.organisation((acme,), 8) == acme  # known by its events alone


def test_retention_takes_whole_days(store: Store) -> None:
    short = store.organisations.create("Short", retention_days=2).id
    long = store.organisations.create("Long", retention_days=30).id
    today = now_ms() // DAY_MS
    for organisation_id in (short, long):
        store.usage.save(
            [
                record(organisation_id, "old", (today - 5) * DAY_MS + 1000, 1, 1),
                record(organisation_id, "edge", (today - 2) * DAY_MS + 1000, 1, 1),
                record(organisation_id, "new", today * DAY_MS + 1000, 1, 1),
            ]
        )
    now = today * DAY_MS + 12 * 3_600_000  # the short window starts mid-day today - 2
    assert store.usage.purge(now) == 1
    assert [d.day for d in store.usage.days(short, 7, today - 9, today)] == [today - 2, today]
    assert [d.day for d in store.usage.days(long, 7, today - 9, today)] == [
        today - 5,
        today - 2,
        today,
    ]


def test_a_record_that_would_pass_a_days_sum_bound_is_not_kept(store: Store) -> None:
    """Regression: PostgreSQL failed the whole batch (bigint out of range) and SQLite turned
    the sum into a float once a day's sum passed 2**63 - 1. Now the sums stay exact and at
    most MAX_DAILY: the record that would pass it is refused, the rest of the batch kept."""
    acme = store.organisations.create("Acme").id
    yesterday = now_ms() // DAY_MS - 1
    at = yesterday * DAY_MS + 3_600_000
    assert saved(store, [record(acme, "big", at, MAX_DAILY - 10, 0)])[0][1] is True
    batch = [
        record(acme, "a", at, 5, 0),  # fits: the sum is MAX_DAILY - 5
        record(acme, "over", at, 6, 0),  # would pass it
        record(acme, "over", at, 6, 0),  # its copy: refused alike
        record(acme, "b", at, 5, 0),  # fits exactly
        record(acme, "sms", at, 1, 1, SMS),  # the SMS sums have room
        record(acme, "other day", at + DAY_MS, 6, 0),
    ]
    result = store.usage.save(batch)
    assert [outcome is None for outcome in result] == [False, True, True, False, False, False]
    assert store.usage.days(acme, 7, yesterday, yesterday) == [
        DailyUsage(yesterday, 3, MAX_DAILY, 0, MAX_DAILY, 1, 1, 2)
    ]
    kept = [  # the refused record is not kept
        Traffic(at, DATA, MAX_DAILY - 10, 0, MAX_DAILY - 10),
        Traffic(at, DATA, 5, 0, 5),
        Traffic(at, DATA, 5, 0, 5),
        Traffic(at, SMS, 1, 1, 2),
        Traffic(at + DAY_MS, DATA, 6, 0, 6),
    ]
    assert sorted(store.usage.since(acme, 7, 0), key=repr) == sorted(kept, key=repr)
    assert store.usage.save([record(acme, "c", at, 0, 1)]) == [None]  # the total is full
    assert store.usage.save([record(acme, "d", at, 0, 0)])[0] is not None  # adds nothing
