"""Backfill into a real SQLite file, the live stream into the app (served in process), the
serve demo (a herald serve process)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from herald.events.types import EventQuery
from herald.simulate import World
from herald.simulate.backfill import SimulationError, backfill
from herald.simulate.live import paced
from herald.store import open_store
from tests.support.herald import Herald
from tests.support.server import HeraldServer, start_server


def test_backfill_writes_history_and_creates_the_organisations(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'h.db'}", sqlite_synchronous="NORMAL")
    try:
        written = backfill(store, World(2, 30, 1), 2, batch_size=500, show_progress=False)
        total = store.log.query(EventQuery(per_page=1)).total
        names = [o.name for o in store.organisations.all()]
    finally:
        store.close()
    assert total is not None
    assert written == total > 500
    assert names == ["Demo organisation", "Acme Logistics"]


def test_a_backfill_longer_than_the_retention_is_refused_before_writing(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'h.db'}", sqlite_synchronous="NORMAL")
    try:
        store.organisations.create("Demo organisation", 1, retention_days=60)
        assert backfill(store, World(1, 5, 1), 40, limit=10, show_progress=False) == 10
        store.organisations.set_retention(1, None)  # the default, 30 days
        with pytest.raises(SimulationError, match=r"retention of organisation 1 \(30 days"):
            backfill(store, World(1, 5, 1), 31, show_progress=False)
        assert store.log.query(EventQuery(per_page=1)).total == 10
    finally:
        store.close()


def test_backfill_stops_at_the_limit(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'h.db'}", sqlite_synchronous="NORMAL")
    try:
        written = backfill(store, World(1, 50, 1), 5, limit=777, show_progress=False)
        assert store.log.query(EventQuery(per_page=1)).total == written == 777
    finally:
        store.close()


def test_pacing_sends_the_rate_whatever_the_batch() -> None:
    now = [0.0]
    sent: list[int] = []

    def sleep(seconds: float) -> None:
        now[0] += seconds

    total = paced(
        iter([{"n": i} for i in range(1000)]),
        rate=20,
        send=lambda batch: sent.append(len(batch)),
        limit=100,
        clock=lambda: now[0],
        sleep=sleep,
    )
    assert total == sum(sent) == 100
    assert 4.5 <= now[0] <= 5.5  # 100 events at 20/s: five simulated seconds


def test_the_cli_backfills_a_database(herald: Herald) -> None:
    result = herald.cli(
        "simulate",
        "--orgs",
        "2",
        "--devices",
        "20",
        "--seed",
        "3",
        "--backfill",
        "1",
        "--database",
        herald.database_url,
    )
    assert "Wrote" in result.stdout
    with herald.client(herald.admin_token) as client:
        events = client.get("/event", params={"organisation": 2, "per_page": 5})
    assert events.status_code == 200
    assert int(events.headers["X-Total-Count"]) > 0


def test_the_cli_streams_live_to_a_server(herald: Herald) -> None:
    herald.cli(
        "simulate",
        "--orgs",
        "1",
        "--devices",
        "10",
        "--live",
        "--rate",
        "200",
        "--limit",
        "60",
        "--url",
        herald.url,
        "--token",
        herald.admin_token,
    )
    with herald.client(herald.admin_token) as client:
        response = client.get("/event", params={"provider": "api"})
    assert response.headers["X-Total-Count"] == "60"


def test_the_cli_refuses_an_unclear_mode(herald: Herald) -> None:
    result = herald.cli("simulate", "--devices", "5", check=False)
    assert result.returncode != 0
    assert "--backfill DAYS or --live" in result.stderr


def _total(server: HeraldServer) -> int:
    with server.client(server.admin_token) as client:
        return int(client.get("/event", params={"per_page": 1}).headers["X-Total-Count"])


def test_the_demo_fleet_lives_in_serve(tmp_path: Path) -> None:
    # started as every test server is (--no-demo), then again asking for the demo
    server = start_server(
        tmp_path / "demo", env={"HERALD_DEMO_DEVICES": "20", "HERALD_DEMO_RATE": "20"}
    )
    assert "Demo:" not in server.log()
    server.extra_args = ["--demo"]
    server.restart()
    try:
        # said before it is done: into which database, and how to start without it
        assert "Demo: seeding a demo fleet (3 organisations named as demo ones, 20 devices" in (
            server.log()
        )
        assert f"into {server.database_url}; start with --no-demo" in server.log()
        deadline = time.monotonic() + 30
        while _total(server) == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        seeded = _total(server)
        assert seeded > 0
        while _total(server) == seeded and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _total(server) > seeded  # the live stream goes on
        store = open_store(server.database_url)
        try:
            names = {o.id: o.name for o in store.organisations.all()}
        finally:
            store.close()
        # organisation 1 was made by the first start, without the demo
        assert names == {
            1: "My organisation",
            2: "Acme Logistics (demo)",
            3: "Nordic Metering (demo)",
        }
    finally:
        server.stop()
    server.start()  # a demo database: the stream goes on, and the output says so
    try:
        assert "Demo: the demo fleet in this database gets a few live events" in server.log()
    finally:
        server.stop()
