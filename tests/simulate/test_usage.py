"""The simulated devices' usage records: the same traffic as their sessions, written by the
backfill so the daily usage adds up."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from herald.devices import usage
from herald.ingest.usage import parse_usage
from herald.retention import DAY_MS
from herald.simulate import World
from herald.simulate.backfill import backfill
from herald.simulate.usage import restamp, sends_usage, usage_record
from herald.store import open_store
from herald.timefmt import parse_timestamp, to_ms

START = 1_790_000_000_000


def test_usage_records_carry_the_sessions_traffic_and_change_no_event() -> None:
    world = World(2, 40, 3, usage=True)
    events = list(world.events(START, START + 2 * DAY_MS))
    records = world.take_usage()
    assert world.take_usage() == []  # taken once
    assert events == list(World(2, 40, 3).events(START, START + 2 * DAY_MS))  # same history
    senders = {d.endpoint_id for d in world.devices if sends_usage(d)}
    assert 0 < len(senders) < len(world.devices)  # both sources in the demo

    def by_sender(event: dict[str, Any], type_id: int) -> bool:
        return bool(event["event_type"] == {"id": type_id} and event["endpoint"]["id"] in senders)

    sessions = Counter(
        (e["endpoint"]["id"], e["timestamp"], tuple(e["detail"]["volume"].values()))
        for e in events
        if by_sender(e, 5)
    )
    parsed = [(parse_usage(r), r) for r in records]
    data = Counter(
        (u.endpoint_id, r["end_timestamp"], tuple(r["volume"].values()))
        for u, r in parsed
        if u.traffic_type == 5
    )
    assert sessions and data == sessions
    sent = sum(
        1 for e in events if e["event_type"] == {"id": 1009} and e["endpoint"]["id"] in senders
    )
    assert sum(u.tx for u, _ in parsed if u.traffic_type == 6) == sent > 0
    assert len({u.record_id for u, _ in parsed}) == len(parsed)  # ids unique


def test_restamping_keeps_the_duration() -> None:
    (device,) = World(1, 1, 1).devices
    record = usage_record(device, 5, START, START + 90_000, {"rx": 1, "tx": 0, "total": 1})
    moved = restamp(record, START + DAY_MS)
    start, end = (to_ms(parse_timestamp(moved[k])) for k in ("start_timestamp", "end_timestamp"))
    assert (start, end) == (START + DAY_MS - 90_000, START + DAY_MS)


def test_backfill_writes_the_usage_records(tmp_path: Path) -> None:
    """Per device that sends usage, its data records add up to its sessions' volumes."""
    store = open_store(f"sqlite:///{tmp_path / 'h.db'}", sqlite_synchronous="NORMAL")
    try:
        world = World(1, 30, 2, usage=True)
        backfill(store, world, 2, show_progress=False)
        far = (START // DAY_MS) * 2
        compared = 0
        for device in filter(sends_usage, world.devices):
            days = store.usage.days(1, device.endpoint_id, 0, far)
            bodies = store.usage.sessions(1, device.endpoint_id, 0, far * DAY_MS)
            sessions = [usage.session_traffic(at, body) for at, body in bodies]
            assert sum(d.data_total for d in days) == sum(t.total for t in sessions if t)
            assert sum(d.data_records for d in days) == len(bodies)
            compared += len(bodies)
    finally:
        store.close()
    assert compared > 0
