"""The live feed's fan-out: indexed by organisation, one match per distinct filter."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from herald.api.routes import health
from herald.events.types import LogEntry
from herald.live import feed as live
from herald.live.feed import LogFeed, OrgScope, Subscription, route
from herald.loops import Loops
from herald.metrics import REGISTRY
from herald.model import NewEvent
from herald.query.filter import EventFilter
from herald.store import open_store
from herald.threads import Threads
from herald.timefmt import format_ms, now_ms


@pytest.fixture
def match_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the feed's calls of the event matcher (which still does the matching)."""
    calls: list[int] = []
    selects = live.selects

    def counted(flt: EventFilter, record: dict[str, Any]) -> bool:
        calls.append(1)
        return selects(flt, record)

    monkeypatch.setattr(live, "selects", counted)
    return calls


def _entry(seq: int, organisation_id: int, type_id: int) -> LogEntry:
    record = {"id": seq, "event_type": {"id": type_id}, "organisation": {"id": organisation_id}}
    return LogEntry(seq, organisation_id, type_id, orjson.dumps(record), seq)


def frame(entry: LogEntry, scope: OrgScope) -> bytes:
    """A frame naming its entry and scope, so tests see which was made for whom."""
    return b"%d for %s" % (entry.seq, repr(scope).encode())


def test_other_organisations_entries_are_neither_parsed_nor_matched(
    match_calls: list[int],
) -> None:
    mine = [(EventFilter(organisation_ids=(1,), type_ids=(t,)), (1,)) for t in range(50)]
    others = [LogEntry(seq, 2, 3, b"not JSON: parsing it would fail", seq) for seq in range(1000)]
    assert route(others, {1: mine}, frame) == []
    assert match_calls == []
    routed = route([_entry(1001, 1, 7)], {1: mine}, frame)
    assert routed == [((1, *mine[7]), (1001, b"1001 for (1,)"))]
    assert len(match_calls) == 50  # once per distinct filter of the entry's organisation


def test_an_entry_is_framed_once_per_scope() -> None:
    made: list[bytes] = []

    def counted(entry: LogEntry, scope: OrgScope) -> bytes:
        made.append(frame(entry, scope))
        return made[-1]

    tenant = [(EventFilter(organisation_ids=(1,), type_ids=(t,)), (1,)) for t in (3, 4)]
    internal = [(EventFilter(), None), (EventFilter(organisation_ids=(1,)), None)]
    routed = route([_entry(5, 1, 3)], {1: [*tenant, internal[1]], None: [internal[0]]}, counted)
    assert sorted(made) == [b"5 for (1,)", b"5 for None"]
    assert {group for group, _ in routed} == {
        (1, *tenant[0]),
        (1, *internal[1]),
        (None, *internal[0]),
    }


def _event(organisation_id: int, type_id: int) -> NewEvent:
    ts = now_ms()
    record: dict[str, Any] = {
        "id": None,
        "timestamp": format_ms(ts),
        "event_type": {"id": type_id, "description": "t"},
        "organisation": {"id": organisation_id, "name": "org"},
        "alert": False,
        "description": "d",
    }
    return NewEvent(organisation_id, ts, ts, type_id, 0, 0, False, 5, "api", None, record)


def test_the_feed_matches_once_per_filter_not_per_stream(
    tmp_path: Path, match_calls: list[int]
) -> None:
    """200 identical streams of one organisation cost one match per entry, not 200."""
    store = open_store(f"sqlite:///{tmp_path / 'herald.db'}", sqlite_synchronous="NORMAL")
    threads = Threads("test-live", 2)

    feed = LogFeed(store, threads.run, frame, interval=0.01)

    async def scenario() -> list[Subscription]:
        crowd = [
            Subscription(EventFilter(organisation_ids=(1,), type_ids=(3,)), 100, (1,))
            for _ in range(200)
        ]
        lone = Subscription(EventFilter(organisation_ids=(2,)), 100, (2,))
        everyone = Subscription(EventFilter(type_ids=(4,)), 100, None)  # an internal stream
        for subscription in [*crowd, lone, everyone]:
            await feed.subscribe(subscription)
        events = [_event(1, 3), _event(1, 4), _event(2, 3)] * 10
        await write(events, 1)
        matched = len(match_calls)
        for subscription in [*crowd, everyone]:  # organisation 1 has no stream left
            feed.unsubscribe(subscription)
        await write([_event(1, 3)] * 10, 1 + len(events))
        assert len(match_calls) == matched  # its entries are not even looked at now
        await feed.close()
        return [*crowd, lone, everyone]

    async def write(events: list[NewEvent], first_id: int) -> None:
        await threads.run(store.log.append, events, list(range(first_id, first_id + len(events))))
        while feed.position < await threads.run(store.log.last_seq):
            await asyncio.sleep(0.01)

    try:
        subscriptions = asyncio.run(scenario())
    finally:
        asyncio.run(threads.aclose())
        store.close()
    *crowd, lone, everyone = subscriptions
    assert all(s.queue.qsize() == 10 for s in crowd)  # the type-3 events of organisation 1
    assert lone.queue.qsize() == 10 and everyone.queue.qsize() == 10
    # each of the 30 entries: its organisation's one filter, and the internal stream's
    assert len(match_calls) == 60


def test_a_failing_read_shows_in_the_loop_health_and_the_feed_recovers(tmp_path: Path) -> None:
    """The live feed is a background loop too: its failures reach /ready and /metrics."""
    store = open_store(f"sqlite:///{tmp_path / 'herald.db'}", sqlite_synchronous="NORMAL")
    threads = Threads("test-live", 2)
    loops = Loops()
    failures = [RuntimeError("the log went away")]

    def read_log(after: int, limit: int) -> list[LogEntry]:
        if failures:
            raise failures.pop()
        return store.log.read(after, limit)

    failures_before = metric("herald_background_loop_failures_total", loop="live_feed")
    # what GET /ready answers, from this process's loops and store
    services = SimpleNamespace(run=threads.run, store=store, loops=loops)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], float, float]:
        failing = SimpleNamespace(log=SimpleNamespace(read=read_log, last_seq=store.log.last_seq))
        feed = LogFeed(failing, threads.run, frame, interval=0.01, loops=loops)
        subscription = Subscription(EventFilter(organisation_ids=(1,)), 10, (1,))
        await feed.subscribe(subscription)
        while not loops.failing():
            await asyncio.sleep(0.01)
        failed = await health.ready(services)  # type: ignore[arg-type]
        healthy_when_failed = metric("herald_background_loop_healthy", loop="live_feed")
        await threads.run(store.log.append, [_event(1, 3)], [1])
        await asyncio.wait_for(subscription.queue.get(), 60)  # delivered after the backoff
        recovered = await health.ready(services)  # type: ignore[arg-type]
        await feed.close()
        return (
            failed,
            recovered,
            healthy_when_failed,
            metric("herald_background_loop_healthy", loop="live_feed"),
        )

    try:
        failed, recovered, healthy_when_failed, healthy_after = asyncio.run(scenario())
    finally:
        asyncio.run(threads.aclose())
        store.close()
    assert failed["status"] == "degraded"
    assert failed["loops"]["live_feed"]["healthy"] is False
    assert failed["loops"]["live_feed"]["last_error"] == "RuntimeError: the log went away"
    assert recovered["status"] == "ready"
    assert recovered["loops"]["live_feed"]["healthy"] is True
    assert (healthy_when_failed, healthy_after) == (0.0, 1.0)
    assert metric("herald_background_loop_failures_total", loop="live_feed") == failures_before + 1


def metric(name: str, **labels: str) -> float:
    """A sample of this process's metrics registry: what its ``/metrics`` shows."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
