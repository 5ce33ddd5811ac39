"""The hourly counts answer stats exactly as a scan of the events does, on every backend."""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Callable

from herald.events.types import StatsQuery, StatsRow
from herald.query.filter import EventFilter
from herald.store import Store
from herald.store.rollup import HOUR_MS, answerable
from herald.timefmt import now_ms
from tests.store.conftest import EventFactory

DAY_MS = 86_400_000
Ids = Callable[[int], list[int]]


def _fill(store: Store, make_event: EventFactory, ids: Ids, base: int) -> None:
    """400 events of two organisations over two days, of mixed types, with data volumes."""
    rng = random.Random(7)
    events = []
    for _ in range(400):
        type_id = rng.choice((1, 3, 5, 5, 18))
        volume = {"volume": {"total": rng.randrange(5000) / 100}} if type_id == 5 else None
        event = make_event(
            rng.choice((1, 2)), base + rng.randrange(2 * DAY_MS), type_id, detail=volume
        )
        events.append(
            dataclasses.replace(
                event,
                severity=rng.randrange(3),
                source=rng.randrange(3),
                alert=rng.random() < 0.2,
                criticality=rng.randrange(1, 6),
            )
        )
    for start in range(0, len(events), 100):
        store.log.append(events[start : start + 100], ids(100))


def _cells(rows: list[StatsRow]) -> list[tuple[object, ...]]:
    return [(r.bucket_ms, r.key, r.count, round(r.volume_mb, 6)) for r in rows]


def _queries(base: int) -> list[StatsQuery]:
    ranges = [
        (base, base + 2 * DAY_MS - 1),  # whole days
        (base + 1_234_567, base + DAY_MS + 7_654_321),  # partial hours at both ends
        (base + 5 * HOUR_MS + 10, base + 5 * HOUR_MS + 900_000),  # within one hour
    ]
    filters = [
        EventFilter(organisation_ids=(1,)),
        EventFilter(organisation_ids=(1, 2), type_ids=(5,)),
        EventFilter(organisation_ids=(2,), severities=(0, 2), alert=False, criticalities=(3,)),
    ]
    shapes = itertools.product(
        (None, HOUR_MS, DAY_MS), (None, "type", "severity", "source"), ("count", "volume")
    )
    return [
        StatsQuery(dataclasses.replace(flt, from_ms=start, until_ms=until), bucket, group, order)
        for (start, until), flt, (bucket, group, order) in itertools.product(
            ranges, filters, list(shapes)
        )
    ]


def test_counts_equal_a_scan_of_the_events(
    store: Store, make_event: EventFactory, ids: Ids
) -> None:
    base = (now_ms() // DAY_MS - 3) * DAY_MS
    for organisation in (1, 2):  # the purge goes by organisation
        store.organisations.create(f"org {organisation}", organisation)
    _fill(store, make_event, ids, base)
    scan = store.log._event_stats  # the events-only reference
    queries = _queries(base)
    assert sum(answerable(q) for q in queries) > len(queries) // 2
    for query in queries:
        assert _cells(store.log.stats(query)) == _cells(scan(query)), query
    limited = StatsQuery(queries[0].filter, group="type", limit=2)
    assert _cells(store.log.stats(limited)) == _cells(scan(limited))

    retention = int(store.maintenance.default_retention_days * DAY_MS)
    store.maintenance.purge(base + DAY_MS + retention)  # the first day goes, from the counts too
    for query in queries:
        assert _cells(store.log.stats(query)) == _cells(scan(query)), query
    (total,) = store.log.stats(StatsQuery(EventFilter(from_ms=base, until_ms=base + DAY_MS - 1)))
    assert total.count == 0


def test_filters_the_counts_do_not_hold_read_the_events() -> None:
    whole_day = EventFilter(organisation_ids=(1,), from_ms=0, until_ms=DAY_MS - 1)
    assert answerable(StatsQuery(whole_day, bucket_ms=DAY_MS, group="type"))
    assert not answerable(StatsQuery(whole_day.replace(endpoint_ids=(7,))))
    assert not answerable(StatsQuery(whole_day, group="country"))
    assert not answerable(StatsQuery(whole_day, bucket_ms=60_000))
