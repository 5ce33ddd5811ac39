"""/ready and /metrics tell the truth about the background loops and the node id lease."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from herald.store import nodes
from herald.store import sqlite as sqlite_store
from herald.store.sqlite import sqlite_path
from tests.support.herald import Herald
from tests.support.inproc import InProcessHerald, start_in_process
from tests.support.metrics import increase, scrape

DEADLINE = 40


def _get(herald: Herald, path: str) -> httpx.Response:
    """``path`` of ``herald``, given 30 s to answer as ``Herald.client`` gives (a loaded
    machine takes more than httpx's default 5 s)."""
    return httpx.get(f"{herald.url}{path}", timeout=30)


def _until(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + DEADLINE
    while not (result := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
    return result


def test_a_failing_loop_keeps_running_and_ready_reports_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17 #2: the purge died on its first unexpected error, silently, for good. Here it
    fails (the database is locked by another process for a while): it is logged, /ready says
    ``degraded`` with the error, /metrics shows the loop unhealthy, and it recovers."""
    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT_SECONDS", 2.0)  # fail sooner than 10 s
    server = start_in_process(
        tmp_path / "herald",
        env={"HERALD_PURGE_INTERVAL_SECONDS": "0.2", "HERALD_METRICS_PUBLIC": "true"},
    )
    try:
        before = scrape(server)
        with contextlib.closing(
            sqlite3.connect(sqlite_path(server.database_url), isolation_level=None)
        ) as blocker:
            blocker.execute("BEGIN IMMEDIATE")  # the one writer's lock, held
            ready = _until(
                lambda: (
                    (r := _get(server, "/ready").json())["loops"]["retention"]["failures"] and r
                ),
                "the purge never failed",
            )
            assert ready["status"] == "degraded"
            assert "locked" in ready["loops"]["retention"]["last_error"]
            metrics = _get(server, "/metrics").text
            assert 'herald_background_loop_healthy{loop="retention"} 0.0' in metrics
            blocker.execute("ROLLBACK")
        _until(
            lambda: _get(server, "/ready").json()["status"] == "ready",
            "the purge never recovered",
        )
        assert 'herald_background_loop_healthy{loop="retention"} 1.0' in (
            _get(server, "/metrics").text
        )
        assert "retention: failed" in server.log()  # logged, with its traceback
        failures = server.log().count("retention: failed (")  # each failed step logs once
        assert failures >= 1
        loop_failures = 'herald_background_loop_failures_total{loop="retention"}'
        assert increase(server, before, loop_failures) == failures
    finally:
        server.stop()


@pytest.fixture
def herald(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[InProcessHerald]:
    """The in-process server, its node lease's heartbeat every half second (at its 10 s,
    each wait below for the heartbeat to notice would take that long)."""
    monkeypatch.setattr(nodes, "HEARTBEAT_SECONDS", 0.5)
    server = start_in_process(tmp_path / "herald", database_url=database_url)
    try:
        yield server
    finally:
        server.stop()


def test_a_server_that_lost_its_node_id_lease_stops_writing_and_says_so(
    herald: InProcessHerald,
) -> None:
    """Issue 17: a process that loses its node id lease stops writing (503), says so in
    its log and in /ready, and writes again once it holds the id again."""
    assert _get(herald, "/ready").status_code == 200
    _raw(herald.database_url, "UPDATE nodes SET holder = 'another process'")
    lost = _until(
        lambda: (r := _get(herald, "/ready")).status_code == 503 and r,
        "/ready never noticed the lost lease",
    )
    assert "lease lost to another process" in lost.json()["detail"]
    with herald.client(herald.admin_token) as client:
        event = {"event_type": {"id": 10001}, "organisation": {"id": 1}}
        refused = client.post("/event", json=event)
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert client.get("/event").status_code == 200  # reads go on
        assert "lease lost" in herald.log()
        _raw(herald.database_url, "DELETE FROM nodes")  # the other process is gone
        _until(
            lambda: _get(herald, "/ready").status_code == 200,
            "the server never took its node id again",
        )
        assert client.post("/event", json=event).status_code == 201


def _raw(database_url: str, sql: str) -> None:
    if database_url.startswith("sqlite:"):
        with contextlib.closing(sqlite3.connect(sqlite_path(database_url))) as conn, conn:
            conn.execute(sql)
    else:
        with psycopg.connect(database_url, autocommit=True) as pg:
            pg.execute(sql.encode())
