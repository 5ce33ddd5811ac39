"""A bounded read of one organisation's log: however little of the log is its own, one read
looks at no more than a scan's worth of rows and says how far it looked."""

from __future__ import annotations

from collections.abc import Callable

from herald.events.types import LogEntry, LogScan
from herald.handlers.filters import handler_filter
from herald.store import Store
from tests.store.conftest import EventFactory
from tests.support.waiting import readable

Ids = Callable[[int], list[int]]
SCAN = 100


def _log(store: Store, make_event: EventFactory, ids: Ids) -> list[int]:
    """1,000 events of organisation 1 and, at three places among them, one of organisation 2;
    the ids of organisation 2's."""
    events = [make_event(2 if n in (150, 520, 990) else 1) for n in range(1000)]
    given = ids(len(events))
    store.log.append(events, given)
    readable(store, given)
    return [
        event_id
        for event_id, event in zip(given, events, strict=True)
        if event.organisation_id == 2
    ]


def _walk(store: Store, upto: int | None = None) -> tuple[list[LogEntry], int]:
    found: list[LogEntry] = []
    position, reads = 0, 0
    while True:
        scan = store.log.scan(position, 50, (2,), upto, scan_rows=SCAN)
        reads += 1
        assert scan.position >= position
        found += scan.entries
        position = scan.position
        if scan.complete:
            return found, reads


def test_a_small_tenants_log_is_read_a_window_at_a_time(
    store: Store, make_event: EventFactory, ids: Ids
) -> None:
    theirs = _log(store, make_event, ids)
    found, reads = _walk(store)
    assert [entry.event_id for entry in found] == theirs
    assert found == store.log.read(0, 1000, (2,))  # what the unbounded read gives
    assert reads in (10, 11)  # ten windows of 100 rows (and maybe one to find the end)
    first = store.log.scan(0, 50, (2,), scan_rows=SCAN)
    assert first.entries == [] and not first.complete  # the first 100 rows hold none of its


def test_a_read_stops_at_its_limit_and_at_the_end_asked_for(
    store: Store, make_event: EventFactory, ids: Ids
) -> None:
    theirs = _log(store, make_event, ids)
    everything = store.log.read(0, 1000)
    second = next(entry.seq for entry in everything if entry.event_id == theirs[1])

    one = store.log.scan(0, 1, (2,))
    assert [entry.event_id for entry in one.entries] == theirs[:1]
    assert (one.position, one.complete) == (one.entries[0].seq, False)

    found, _ = _walk(store, upto=second)
    assert [entry.event_id for entry in found] == theirs[:2]
    end = store.log.scan(second, 50, (2,), second, scan_rows=SCAN)
    assert end == (end.entries, second, True) and end.entries == []


def test_a_filtered_read_passes_what_it_looked_at(
    store: Store, make_event: EventFactory, ids: Ids
) -> None:
    """A read with a filter takes only the events it selects, and its position passes the
    others it looked at, up to the log's end: nothing is read twice, none skipped."""
    _log(store, make_event, ids)
    end = store.log.last_seq()
    nothing = handler_filter("type:424242")
    assert store.log.scan(0, 50, (2,), flt=nothing) == LogScan([], end, True)
    windowed = store.log.scan(0, 50, (2,), scan_rows=SCAN, flt=nothing)
    assert windowed.entries == [] and 0 < windowed.position < end and not windowed.complete
    everything = store.log.scan(0, 50, (2,))
    selected = store.log.scan(
        0, 50, (2,), flt=handler_filter(f"type:{everything.entries[0].type_id}")
    )
    assert selected.entries == everything.entries and selected.position == end
