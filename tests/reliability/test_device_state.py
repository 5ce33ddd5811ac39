"""The device states' owner under SIGKILL, on each backend: the states are written behind in
groups with the position they include, so a restart folds the rest of the log again; no
state is lost and no status change is written twice or missed."""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from herald.devices import changes
from herald.devices import state as ds
from herald.devices.fold import fold, parse
from herald.events.types import EventQuery, LogEntry
from herald.query.filter import EventFilter
from herald.store import Store, open_store
from herald.timefmt import format_ms, now_ms
from tests.reliability.conftest import make_tenant
from tests.reliability.figures import Figures
from tests.support.server import HeraldServer, start_server
from tests.support.waiting import wait_until

TYPES = (1, 2, 3, 3, 5, 15, 16, 19, 56, 9, 8, 11, 42, 10001)
NETWORKS = (
    {"id": 3, "name": "Vodafone", "country": {"id": 74, "name": "Germany"}},
    {"id": 9, "name": "Orange", "country": {"id": 67, "name": "France"}},
)
Change = tuple[int, str, int, int]  # organisation, endpoint, new status, cause


def _batches(organisation_id: int, seed: int, count: int, size: int) -> list[list[dict[str, Any]]]:
    """Events of 200 endpoints in random order of time (a backfill mixed with live traffic)."""
    rng = random.Random(seed)
    start = now_ms() - 86_400_000
    batches = []
    for _ in range(count):
        items = []
        for _ in range(size):
            network = rng.choice(NETWORKS)
            items.append(
                {
                    "event_type": {"id": rng.choice(TYPES)},
                    "organisation": {"id": organisation_id},
                    "timestamp": format_ms(start + rng.randrange(86_000_000)),
                    "endpoint": {"id": rng.randrange(200)},
                    "detail": {**network, "pdp_context": {"apn": rng.choice(("em", "iot"))}},
                }
            )
        batches.append(items)
    return batches


def _log(store: Store) -> list[LogEntry]:
    entries: list[LogEntry] = []
    while batch := store.log.read(entries[-1].seq if entries else 0, 5000):
        entries += batch
    return entries


def _expected(store: Store, organisation_id: int) -> tuple[dict[tuple[int, str], str], list[Any]]:
    """Every state, and every status change, as folding the whole log at once gives them."""
    entries = _log(store)
    folded, found = fold({}, parse(entries), lambda at, _: at[0] == organisation_id)
    states = {key: ds.dumps(state).decode() for key, state in folded.items()}
    return states, [(c.organisation_id, c.key, int(c.after), c.cause.event_id) for c in found]


def _written_changes(store: Store) -> list[Change]:
    """The status-change events in the log (a query: PostgreSQL answers it with every
    committed row)."""
    found: list[Change] = []
    query = EventQuery(EventFilter(type_ids=tuple(changes.TYPES)), per_page=1000)
    while True:
        page = store.log.query(query)
        for body in page.items:
            record = orjson.loads(body)
            detail = record["detail"]
            found.append(
                (
                    record["organisation"]["id"],
                    str(record["endpoint"]["id"]),
                    detail["status"]["id"],
                    detail["cause"]["id"],
                )
            )
        if page.next_cursor is None:
            return found
        query = EventQuery(query.filter, per_page=1000, cursor=page.next_cursor)


def _kill_during_catch_up(server: HeraldServer, store: Store, last: int) -> int | None:
    """Start the server, kill it once its owner has written part of the log; the position
    it had written (None: it finished first)."""
    began = store.devices.cursor()  # before the start: its owner may write before it answers
    server.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if store.devices.cursor() != began:
            server.kill()
            cursor = store.devices.cursor()
            return cursor if cursor < last else None
        time.sleep(0.005)
    server.kill()
    raise AssertionError("the owner wrote nothing in a minute")


def test_sigkill_of_the_owner_loses_no_state_and_repeats_no_change(
    tmp_path: Path, database_url: str, figures: Figures
) -> None:
    # the owner looks at the log only at start while the events go in
    server = start_server(
        tmp_path / "herald",
        # each restart waits for the killed owner's lease to run out: a second here
        {"HERALD_DEVICE_STATE_POLL_SECONDS": "600", "HERALD_DEVICE_STATE_LEASE_SECONDS": "1"},
        database_url,
    )
    store = open_store(server.database_url, sqlite_synchronous="NORMAL")
    try:
        tenant = make_tenant(server, "Crash Co", "event:create", "event:read")
        with server.client(server.admin_token) as client:
            path = f"/organisation/{tenant.organisation_id}/device_events"
            assert client.put(path, json={"enabled": True}).status_code == 200
            for items in _batches(tenant.organisation_id, 18, 30, 1000):
                assert client.post("/event", json=items).status_code == 201
        server.kill()
        last = store.log.last_seq()
        server.env["HERALD_DEVICE_STATE_POLL_SECONDS"] = "0.2"
        cut_short = []
        for _ in range(3):  # each start waits for the killed owner's lease to run out
            cursor = _kill_during_catch_up(server, store, last)
            if cursor is None:
                break
            cut_short.append(cursor)
            figures.add("faults.device_state_kills")
        assert cut_short, "no kill landed during the catch-up"
        server.start()
        # past the events posted, and past the status changes it wrote for them
        wait_until(
            lambda: last < store.devices.cursor() == store.log.last_seq(),
            90,
            lambda: f"at {store.devices.cursor()} of {store.log.last_seq()}",
        )
        states, expected = _expected(store, tenant.organisation_id)
        stored = store.devices.states(sorted(states))
        assert {key: row.state for key, row in stored.items()} == states
        assert len(states) == 200
        written = _written_changes(store)
        assert Counter(written) == Counter(expected)  # each change once, none missed
        assert len(expected) > 500
    finally:
        store.close()
        server.stop()
