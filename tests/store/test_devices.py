"""The device-state projection over the store, on each backend."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import orjson
import psycopg
import pytest

from herald.catalog import load_catalog
from herald.devices import changes
from herald.devices import state as ds
from herald.devices.decode import record_fields
from herald.devices.fold import parse
from herald.devices.projector import RENEW_SECONDS, DeviceProjector, in_process
from herald.events.types import EventQuery
from herald.events.writer import EventWriter
from herald.ids import IdGenerator
from herald.loops import Loops
from herald.query.filter import EventFilter
from herald.store import Store, StoreError, StoreUnavailable
from herald.store.device_records import DeviceQuery
from herald.timefmt import now_ms
from tests.store.conftest import EventFactory
from tests.support.herald import HERALD
from tests.support.waiting import readable, settled, wait_until

T0 = now_ms() - 3 * 86_400_000  # within the retention window, whole minutes apart
MIN = 60_000
NETWORK = {"id": 3, "name": "Vodafone", "country": {"id": 74, "name": "Germany"}}


def _story(make_event: EventFactory, org: int, endpoint: int, start: int = 0) -> list[Any]:
    def at(minute: int) -> int:
        return T0 + (start + minute) * MIN

    ref = {"id": endpoint, "name": f"tracker-{endpoint}"}
    return [
        make_event(org, at(0), 1, endpoint=ref, detail=NETWORK),
        make_event(org, at(1), 3, endpoint=ref, detail={**NETWORK, "pdp_context": {"apn": "em"}}),
        make_event(org, at(2), 5, endpoint=ref),
        make_event(org, at(3), 15, endpoint=ref),
    ]


def _snapshot(store: Store, org: int) -> list[tuple[str, int, str]]:
    rows, _ = store.devices.page(DeviceQuery((org,), sort=(("id", False),)))
    return [(row.endpoint_key, row.status, row.state) for row in rows]


def test_projection_follows_the_log_and_replays_the_same(
    store: Store, make_event: EventFactory, ids: Callable[[int], list[int]]
) -> None:
    org = store.organisations.create("Acme").id
    events = _story(make_event, org, 7) + _story(make_event, org, 8)[:2]
    events.append(make_event(org, T0, 3, user={"id": 1}))  # names no endpoint: no state
    stored = ids(len(events))
    store.log.append(events, stored)
    readable(store, stored)
    projector = DeviceProjector(store, chunk=2)  # several transactions, each with its cursor
    assert projector.catch_up() == len(events)
    assert store.devices.cursor() == store.log.last_seq()
    assert [(key, status) for key, status, _ in _snapshot(store, org)] == [
        ("7", ds.Status.OFFLINE),
        ("8", ds.Status.ONLINE),
    ]
    before = _snapshot(store, org)
    store.devices.reset()
    assert store.devices.cursor() == 0 and _snapshot(store, org) == []
    DeviceProjector(store, chunk=1000).catch_up()
    assert _snapshot(store, org) == before


def test_backfilled_events_do_not_move_the_state_back(
    store: Store, make_event: EventFactory, ids: Callable[[int], list[int]]
) -> None:
    org = store.organisations.create("Acme").id
    projector = DeviceProjector(store)
    online = _story(make_event, org, 7, start=100)[:2]
    first = ids(2)
    store.log.append(online, first)
    readable(store, first)
    projector.catch_up()
    row = store.devices.get((org,), "7")
    assert row is not None and row.status == ds.Status.ONLINE
    late = _story(make_event, org, 7, start=0)  # an hour and a half older: ends offline
    later = ids(len(late))
    store.log.append(late, later)
    readable(store, later)
    projector.catch_up()
    again = store.devices.get((org,), "7")
    assert again is not None and again.status == ds.Status.ONLINE
    assert again.last_event_ms == T0 + 101 * MIN


def _replayed(store: Store) -> dict[str, str]:
    """Every endpoint's state as folding the whole log in memory gives it."""
    states: dict[str, ds.DeviceState] = {}
    cursor = 0
    while entries := store.log.read(cursor, 1000):
        for (_, key), effect in parse(entries):
            states[key] = ds.apply(states.get(key, ds.DeviceState()), effect)
        cursor = entries[-1].seq
    return {key: ds.dumps(folded).decode() for key, folded in states.items()}


def test_a_projector_folds_on_what_others_wrote_not_on_what_it_remembers(
    store: Store, make_event: EventFactory, ids: Callable[[int], list[int]]
) -> None:
    """A projector keeps the states it wrote between steps (here at most two); another
    process folding in between must not leave it folding on stale ones."""
    org = store.organisations.create("Acme").id
    ours, theirs = DeviceProjector(store, cache=2), DeviceProjector(store)
    story = {endpoint: _story(make_event, org, endpoint) for endpoint in (7, 8, 9)}

    def add(events: list[Any], projector: DeviceProjector) -> None:
        stored = ids(len(events))
        store.log.append(events, stored)
        readable(store, stored, store.devices.cursor())
        projector.catch_up()
        assert {key: state for key, _, state in _snapshot(store, org)} == _replayed(store)

    add([story[7][0], story[8][0], story[9][0]], ours)  # attached; ours keeps 8 and 9
    add([story[8][1], story[9][1]], theirs)  # online, written by the other projector
    add([story[8][2]], ours)  # 8 attached again, folded on 8 online
    add([make_event(org, T0 + 10 * MIN, 11, endpoint={"id": 9})], theirs)  # 9 blocked
    add([story[9][3], story[7][1]], ours)  # an older purge leaves 9 blocked; 7 online
    assert [(key, status) for key, status, _ in _snapshot(store, org)] == [
        ("7", ds.Status.ONLINE),
        ("8", ds.Status.ATTACHED),
        ("9", ds.Status.BLOCKED),
    ]


def test_the_cursor_moves_only_with_the_rows(
    store: Store, make_event: EventFactory, ids: Callable[[int], list[int]]
) -> None:
    org = store.organisations.create("Acme").id
    events = _story(make_event, org, 7)
    stored = ids(len(events))
    store.log.append(events, stored)
    readable(store, stored)
    entries = store.log.read(0, 100)
    projector = DeviceProjector(store)
    assert asyncio.run(projector.step()) == len(entries)
    row = store.devices.get((org,), "7")
    assert row is not None
    # a row the database refuses (no status) undoes the cursor's move with it
    broken = dataclasses.replace(row, endpoint_key="8", status=None)  # type: ignore[arg-type]
    with pytest.raises(StoreError):
        store.devices.save(entries[-1].seq, entries[-1].seq + 10, [broken])
    assert store.devices.cursor() == entries[-1].seq
    assert store.devices.get((org,), "8") is None
    # a writer that read from an older position (another process was faster) writes nothing
    newer = dataclasses.replace(row, status=ds.Status.BLOCKED)
    assert not store.devices.save(entries[0].seq, entries[-1].seq + 10, [newer])
    kept = store.devices.get((org,), "7")
    assert kept == row and store.devices.cursor() == entries[-1].seq


def test_queries_are_scoped_filtered_and_counted(
    store: Store, make_event: EventFactory, ids: Callable[[int], list[int]]
) -> None:
    acme, other = store.organisations.create("Acme").id, store.organisations.create("Other").id
    events = [
        *_story(make_event, acme, 1)[:1],  # attached
        *_story(make_event, acme, 2, start=10)[:2],  # online
        *_story(make_event, acme, 3, start=20),  # offline
        *_story(make_event, other, 1, start=30)[:2],  # the same endpoint id elsewhere
    ]
    stored = ids(len(events))
    store.log.append(events, stored)
    readable(store, stored)
    DeviceProjector(store).catch_up()
    assert store.devices.status_counts((acme,)) == {0: 1, 1: 1, 2: 1}
    assert store.devices.status_counts(None) == {0: 1, 1: 2, 2: 1}
    mine = store.devices.get((acme,), "1")
    theirs = store.devices.get((other,), "1")
    assert mine is not None and theirs is not None and mine.status != theirs.status
    assert store.devices.get((other,), "2") is None
    rows, total = store.devices.page(DeviceQuery((acme,), statuses=(0, 1)))
    assert total == 2 and [row.endpoint_key for row in rows] == ["2", "1"]  # newest first
    rows, total = store.devices.page(
        DeviceQuery((acme,), countries=("Germany",), seen_before_ms=T0 + 20 * MIN, per_page=1)
    )
    assert total == 2 and [row.endpoint_key for row in rows] == ["2"]
    rows, _ = store.devices.page(
        DeviceQuery((acme,), operators=("Vodafone",), sort=(("status", True),), page=2, per_page=2)
    )
    assert [row.endpoint_key for row in rows] == ["1"]
    assert store.devices.page(DeviceQuery((acme,), countries=("France",))) == ([], 0)
    assert store.devices.page(DeviceQuery(()))[1] == 0


def test_a_later_event_by_id_only_keeps_the_endpoints_name(
    store: Store, make_event: EventFactory, ids: Callable[[int], list[int]]
) -> None:
    """ "GPS Tracker" stays the name (in the row the fleet list filters on, and in the state)
    when a newer event names the endpoint by its id alone."""
    org = store.organisations.create("Acme").id
    named = {"id": 733023, "name": "GPS Tracker", "imei": "356938035643809"}
    events = [
        make_event(org, T0, 1, endpoint=named, detail=NETWORK),
        make_event(org, T0 + MIN, 2, endpoint={"id": 733023}, detail=NETWORK),
        make_event(org, T0 + 2 * MIN, 5, endpoint={"id": 733023, "name": None}),
    ]
    stored = ids(len(events))
    store.log.append(events, stored)
    readable(store, stored)
    DeviceProjector(store).catch_up()
    row = store.devices.get((org,), "733023")
    assert row is not None and row.endpoint_name == "GPS Tracker"
    assert ds.endpoint(ds.loads(row.state)) == named
    rows, total = store.devices.page(DeviceQuery((org,), name_contains=("GPS",)))
    assert total == 1 and rows[0].endpoint_key == "733023"


def test_herald_db_rebuild_device_state(
    store: Store, database_url: str, make_event: EventFactory, ids: Callable[[int], list[int]]
) -> None:
    org = store.organisations.create("Acme").id
    events = _story(make_event, org, 7)[:2]
    stored = ids(len(events))
    store.log.append(events, stored)
    readable(store, stored)
    DeviceProjector(store).catch_up()
    kept = store.devices.get((org,), "7")
    rebuilt = subprocess.run(
        [*HERALD, "db", "rebuild-device-state", "--database", database_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "device states rebuilt from 2 events" in rebuilt.stdout
    again = store.devices.get((org,), "7")
    assert kept is not None and again is not None
    assert again.status == ds.Status.ONLINE and again.state == kept.state
    assert again.updated_ms > kept.updated_ms  # written again, the same


def test_the_serve_loop_follows_the_log_and_stops_between_chunks(
    store: Store, make_event: EventFactory, ids: Callable[[int], list[int]]
) -> None:
    org = store.organisations.create("Acme").id
    events = [e for n in range(50) for e in _story(make_event, org, n, start=n)]
    stored = ids(len(events))
    store.log.append(events, stored)
    readable(store, stored)

    async def follow() -> tuple[int, int]:
        loops = Loops()
        async with in_process(store, 0.01, loops) as projector:
            assert projector is not None
            projector.chunk = 5
            await asyncio.sleep(0)  # the first chunk starts; leaving cancels the loop
        stopped_at = store.devices.cursor()  # the chunk in hand was finished, no more
        async with in_process(store, 0.01, loops):
            while store.devices.cursor() != store.log.last_seq():
                await asyncio.sleep(0.01)
        assert loops.report()["device_state"]["healthy"] is True
        return stopped_at, store.devices.status_counts((org,)).get(ds.Status.OFFLINE, 0)

    stopped_at, offline = asyncio.run(asyncio.wait_for(follow(), 30))
    assert stopped_at < store.log.last_seq()  # cancelled long before the end of the log
    assert offline == 50


def _changes(store: Store) -> list[tuple[int, str, int, int]]:
    """The status-change events in the log, in the order written (a query, which PostgreSQL
    answers with every committed row, unlike the log's reader, held at the safe watermark):
    (organisation, endpoint, new status, cause)."""
    page = store.log.query(EventQuery(EventFilter(type_ids=tuple(changes.TYPES)), per_page=1000))
    found = []
    for record in sorted((orjson.loads(body) for body in page.items), key=lambda r: r["id"]):
        endpoint = record["endpoint"].get("id", record["endpoint"].get("name"))
        detail = record["detail"]
        assert record["event_type"]["id"] == changes.FIRST_TYPE + detail["status"]["id"]
        assert record["provider"] == "herald"
        found.append(
            (
                record["organisation"]["id"],
                str(endpoint),
                detail["status"]["id"],
                detail["cause"]["id"],
            )
        )
    return found


def test_status_changes_are_events_once_for_the_organisations_that_ask(
    store: Store, make_event: EventFactory, ids: Callable[[int], list[int]]
) -> None:
    acme, other = store.organisations.create("Acme").id, store.organisations.create("Other").id
    assert store.organisations.set_device_events(acme, True).device_events
    assert store.organisations.get(other) is not None
    assert not store.organisations.get(other).device_events  # type: ignore[union-attr]
    projector = DeviceProjector(store, chunk=3, catalog=load_catalog(), ids=IdGenerator(3))

    def add(events: list[Any]) -> list[int]:
        stored = ids(len(events))
        store.log.append(events, stored)
        readable(store, stored, store.devices.cursor())
        projector.catch_up()
        return stored

    story = add(_story(make_event, acme, 7, start=100) + _story(make_event, other, 7))
    offline, attached, online = ds.Status.OFFLINE, ds.Status.ATTACHED, ds.Status.ONLINE
    expected = [
        (acme, "7", attached, story[0]),  # Update location
        (acme, "7", online, story[1]),  # Create PDP Context
        (acme, "7", attached, story[2]),  # Delete PDP Context
        (acme, "7", offline, story[3]),  # Purge location
    ]
    assert _changes(store) == expected
    written = store.log.query(EventQuery(EventFilter(type_ids=(2102,))))
    record = orjson.loads(written.items[0])
    assert record["event_type"]["description"] == "Endpoint offline"
    assert record["detail"]["previous_status"] == {"id": 0, "description": "ATTACHED"}
    assert record["endpoint"] == {"id": 7, "name": "tracker-7"}
    assert record["organisation"] == {"id": acme, "name": "Acme"}
    # the change events name the endpoint but are no sign of life: the state ignores them
    row = store.devices.get((acme,), "7")
    assert row is not None and row.last_event_ms == T0 + 103 * MIN
    # backfilled events behind the newest change nothing: no event; a newer block does
    add(_story(make_event, acme, 7, start=0))
    assert _changes(store) == expected
    block = add([make_event(acme, T0 + 104 * MIN, 11, endpoint={"id": 7})])
    expected.append((acme, "7", ds.Status.BLOCKED, block[0]))
    assert _changes(store) == expected
    # a rebuild re-reads the log in other chunks and writes no change again
    store.devices.reset()
    DeviceProjector(store, chunk=1000, catalog=load_catalog(), ids=IdGenerator(3)).catch_up()
    assert _changes(store) == expected
    # nor does folding the log again as if never folded (a restored backup): the same ids
    store.write(  # type: ignore[attr-defined]
        lambda c: store.execute(  # type: ignore[attr-defined]
            c, "UPDATE device_projection SET cursor_seq = 0, quiet_until_seq = 0"
        )
    )
    store.write(lambda c: store.execute(c, "DELETE FROM device_states"))  # type: ignore[attr-defined]
    projector.catch_up()
    assert _changes(store) == expected
    # opted out: no more
    store.organisations.set_device_events(acme, False)
    add([make_event(acme, T0 + 105 * MIN, 42, endpoint={"id": 7})])
    assert _changes(store) == expected
    assert store.devices.get((acme,), "7").status == ds.Status.OFFLINE  # type: ignore[union-attr]


def test_one_owner_keeps_the_states_until_its_lease_runs_out(
    store: Store, make_event: EventFactory, ids: Callable[[int], list[int]]
) -> None:
    org = store.organisations.create("Acme").id
    first, second = (DeviceProjector(store, lease_seconds=0.5) for _ in range(2))
    events = _story(make_event, org, 7)
    stored = ids(len(events))
    store.log.append(events[:2], stored[:2])
    readable(store, stored[:2])
    assert asyncio.run(first.step()) == 2 and first.owns
    assert store.devices.owner() == first.owner
    with pytest.raises(StoreUnavailable, match="kept by"):
        second.catch_up()  # the first keeps them
    time.sleep(0.6)  # the first stops renewing: its lease runs out
    store.log.append(events[2:], stored[2:])
    readable(store, stored[2:], store.devices.cursor())
    assert second.catch_up() == 2 and store.devices.owner() is None  # given up after
    assert store.devices.get((org,), "7").status == ds.Status.OFFLINE  # type: ignore[union-attr]
    # the first's next write finds the position moved on: it writes nothing, and takes the
    # lease again from what the second wrote
    assert asyncio.run(first.step()) == 0 and first.owns
    assert store.devices.cursor() == store.log.last_seq()
    assert store.devices.get((org,), "7").status == ds.Status.OFFLINE  # type: ignore[union-attr]


def test_the_events_appended_here_are_folded_as_built(
    store: Store,
    make_event: EventFactory,
    ids: Callable[[int], list[int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The owner reads only the positions of the events its process appended, not their
    records; another process's events it reads and decodes."""
    org = store.organisations.create("Acme").id
    projector = DeviceProjector(store)
    writer = EventWriter(store, IdGenerator(5))
    writer.observe(projector.appended)
    assert asyncio.run(projector.step()) == 0 and projector.owns
    decoded: list[int] = []

    def decode(type_id: int, body: bytes) -> dict[str, Any] | None:
        decoded.append(type_id)
        return record_fields(type_id, body)

    monkeypatch.setattr("herald.devices.fold.record_fields", decode)
    appended = writer.append(_story(make_event, org, 7)[:2])
    readable(store, appended.ids)
    assert asyncio.run(projector.step()) == 2
    assert decoded == []
    others = _story(make_event, org, 8)[:1]
    store.log.append(others, ids(1))  # another process's
    wait_until(lambda: asyncio.run(projector.step()) == 1, 10)
    assert decoded == [1]
    assert [(key, status) for key, status, _ in _snapshot(store, org)] == [
        ("7", ds.Status.ONLINE),
        ("8", ds.Status.ATTACHED),
    ]
    asyncio.run(projector.aclose())
    assert store.devices.owner() is None


def test_a_read_a_second_after_an_acknowledgement_reflects_the_event(
    store: Store, make_event: EventFactory, backend: str
) -> None:
    """The staleness rule, in process: a state read made a second after an event was
    acknowledged (its append returned) reflects it, and says as of when. On PostgreSQL the
    clock starts once every write transaction begun before the acknowledgement has ended,
    and the as-of time also waits for those begun after it until its owner's next look at
    the log: here other test sessions', in other databases of the server, may be open for
    seconds, so on PostgreSQL the as-of time is only required to come (the second is
    measured by the bench, on a server of its own)."""
    org = store.organisations.create("Acme").id
    writer = EventWriter(store, IdGenerator(6))

    def as_of_reached(endpoint: int, acknowledged: int) -> bool:
        return store.devices.lookup((org,), str(endpoint))[1].as_of_ms >= acknowledged

    async def post_and_read() -> None:
        async with in_process(store, 0.2, Loops(), writer=writer):
            for endpoint in range(5):
                story = _story(make_event, org, endpoint, start=10 * endpoint)
                for event in story[:2]:
                    await asyncio.to_thread(writer.append, [event])
                    await asyncio.to_thread(settled, store)  # the clock starts here
                    acknowledged = now_ms()
                    await asyncio.sleep(1)
                    read = await asyncio.to_thread(store.devices.lookup, (org,), str(endpoint))
                    row, freshness = read
                    assert row is not None and row.last_event_ms == event.timestamp_ms
                    if backend == "sqlite":
                        assert freshness.as_of_ms >= acknowledged
                    else:
                        await asyncio.to_thread(
                            wait_until, partial(as_of_reached, endpoint, acknowledged), 10
                        )

    asyncio.run(asyncio.wait_for(post_and_read(), 120))


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_as_of_time_waits_for_a_write_transaction_begun_before_it(
    store: Store, make_event: EventFactory, database_url: str
) -> None:
    """PostgreSQL: an event committed while an older write transaction is open is held back
    from the log's readers, so no state may say it is as of a time after that commit until
    the older transaction has ended and the event is folded."""
    org = store.organisations.create("Acme").id
    projector = DeviceProjector(store)
    writer = EventWriter(store, IdGenerator(7))
    assert asyncio.run(projector.step()) == 0 and projector.owns
    with psycopg.connect(database_url) as older:
        older.execute("SELECT pg_current_xact_id()")  # a write transaction's number, open
        writer.append(_story(make_event, org, 3)[:1])
        committed = now_ms()
        for _ in range(4):  # past a renewal of the lease, which writes the as-of time
            time.sleep(RENEW_SECONDS)
            asyncio.run(projector.step())
        _, freshness = store.devices.lookup((org,), "3")
        assert freshness.as_of_ms < committed

    def as_of_after_the_commit() -> bool:
        asyncio.run(projector.step())
        return store.devices.lookup((org,), "3")[1].as_of_ms > committed

    wait_until(as_of_after_the_commit, 10)  # once the transactions begun by then have ended
    assert store.devices.lookup((org,), "3")[0] is not None
    asyncio.run(projector.aclose())
