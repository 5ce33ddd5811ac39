"""Query: p50/p99 of the list queries a console or integration runs, through a real server,
beside raw sqlite3 running hand-written SQL for the same rows on the same file.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.common import Mode, Result, disk_bytes, herald_server, peak_rss_mb, percentiles
from bench.events import ENDPOINTS_PER_ORGANISATION, ORGANISATIONS
from bench.querystore import QueryStore
from herald.timefmt import format_ms

TENANT = ORGANISATIONS[0]  # the biggest tenant
DEVICE_TABLES = ("device_states", "device_projection")  # the devices family's, in this store
DAY_MS = 86_400_000
WALK_PAGES = 100
STATS_SAMPLES = 20  # the 30-day aggregate takes seconds at 10M: its p99 is nearly the max

Fetch = Callable[[int], Any]


def _paired(count: int, herald: Fetch, raw: Fetch) -> Result:
    """Both sides on the same parameters, alternately first: whichever reads a page first
    pays for bringing it into the cache, so neither always gets the other's warm pages."""
    herald(0), raw(0)  # warm up
    samples: tuple[list[float], list[float]] = ([], [])
    for n in range(count):
        order = ((0, herald), (1, raw)) if n % 2 else ((1, raw), (0, herald))
        for side, run in order:
            began = time.perf_counter()
            run(n)
            samples[side].append((time.perf_counter() - began) * 1000)
    return _figure(*samples)


def _endpoint(n: int) -> int:
    return TENANT * 1_000_000 + (n * 7919) % ENDPOINTS_PER_ORGANISATION + 1


class _Runs:
    """Each query as a Herald HTTP call and as raw SQL, parameterised by the sample number."""

    def __init__(self, client: httpx.Client, conn: sqlite3.Connection, store: QueryStore) -> None:
        self.client, self.conn, self.store = client, conn, store
        self._cursor: str | None = None  # the cursor walk's position, Herald's
        self._last: tuple[int, int] | None = None  # and raw's (ts, id)

    def _get(self, path: str, params: dict[str, Any]) -> httpx.Response:
        reply = self.client.get(path, params=params)
        if reply.status_code != 200:
            raise RuntimeError(f"{path} answered {reply.status_code}: {reply.text[:300]}")
        return reply

    def _raw(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        return self.conn.execute(sql, params).fetchall()

    def _day(self, n: int) -> tuple[int, int]:
        start = self.store.start_ms + DAY_MS * (1 + n % 28)
        return start, start + DAY_MS - 1

    # newest 100 of one endpoint
    def newest_herald(self, n: int) -> None:
        self._get(f"/endpoint/{_endpoint(n)}/event", {"per_page": 100})

    def newest_raw(self, n: int) -> None:
        args = (TENANT, _endpoint(n))
        where = "FROM events WHERE organisation_id = ? AND endpoint_id = ?"
        self._raw(f"SELECT body {where} ORDER BY ts DESC, id DESC LIMIT 101", args)
        self._raw(f"SELECT COUNT(*) {where}", args)

    # one tenant's day, filtered by type
    def day_herald(self, n: int) -> None:
        start, end = self._day(n)
        params = {"type": (3, 5, 1)[n % 3], "from": format_ms(start), "until": format_ms(end)}
        self._get("/event", {**params, "per_page": 100})

    def day_raw(self, n: int) -> None:
        start, end = self._day(n)
        args = (TENANT, (3, 5, 1)[n % 3], start, end)
        where = "FROM events WHERE organisation_id = ? AND type_id = ? AND ts >= ? AND ts <= ?"
        self._raw(f"SELECT body {where} ORDER BY ts DESC, id DESC LIMIT 101", args)
        self._raw(f"SELECT COUNT(*) {where}", args)

    # page 50 of a filtered list
    def page50_herald(self, n: int) -> None:
        self._get("/event", {"type": (3, 5)[n % 2], "page": 50, "per_page": 100})

    def page50_raw(self, n: int) -> None:
        args = (TENANT, (3, 5)[n % 2])
        where = "FROM events WHERE organisation_id = ? AND type_id = ?"
        self._raw(f"SELECT body {where} ORDER BY ts DESC, id DESC LIMIT 101 OFFSET 4900", args)
        self._raw(f"SELECT COUNT(*) {where}", args)

    # a cursor walk: one page after another (the first call, the warm-up, is page 1)
    def walk_herald(self, n: int) -> None:
        params: dict[str, Any] = {"per_page": 100}
        if self._cursor:
            params["cursor"] = self._cursor
        self._cursor = self._get("/event", params).headers.get("X-Next-Cursor")

    def walk_raw(self, n: int) -> None:
        sql = "SELECT body, ts, id FROM events WHERE organisation_id = ?"
        args: tuple[Any, ...] = (TENANT,)
        if self._last is not None:
            sql += " AND (ts, id) < (?, ?)"
            args = (TENANT, *self._last)
        rows = self._raw(sql + " ORDER BY ts DESC, id DESC LIMIT 101", args)
        self._last = (rows[99][1], rows[99][2])

    # the 30-day count by type per day
    def stats_herald(self, n: int) -> None:
        params = {
            "bucket": "day",
            "group": "type",
            "from": format_ms(self.store.start_ms),
            "until": format_ms(self.store.end_ms),
        }
        self._get("/event/stats", params)

    def stats_raw(self, n: int) -> None:
        self._raw(
            "SELECT ts / 86400000, type_id, COUNT(*) FROM events "
            "WHERE organisation_id = ? AND ts >= ? AND ts <= ? GROUP BY 1, 2",
            (TENANT, self.store.start_ms, self.store.end_ms),
        )


def _figure(herald: list[float], raw: list[float]) -> Result:
    ours, theirs = percentiles(herald), percentiles(raw)
    return {
        "herald": ours,
        "raw_sqlite": theirs,
        "ratio_p50": round(ours["p50_ms"] / theirs["p50_ms"], 4),
    }


def query_bench(mode: Mode, store: QueryStore, workdir: Path) -> Result:
    """Every query, Herald over HTTP then raw SQL, on the same store; and the server's RSS."""
    env = {
        "HERALD_RETENTION_DAYS": "366",  # the store's oldest events (30 days) must stay
        "HERALD_DELIVERY_ENABLED": "false",
        # The queries alone: the device-state projector would be folding the 1M events of
        # the store just built while they are measured (its cost is not benched yet).
        "HERALD_DEVICE_STATE_ENABLED": "false",
        "HERALD_RATE_LIMIT_PER_SECOND": "0",  # measure capacity, not the per-token limit
    }
    with herald_server(workdir / "query", database_url=store.url, **env) as server:
        token = server.create_token(TENANT, "event:read")
        conn = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True)
        conn.execute("PRAGMA cache_size = -32000")  # as Herald's readers
        try:
            with server.client(token) as client:
                runs = _Runs(client, conn, store)
                samples = mode.query_samples
                results: Result = {
                    "store_events": store.events,
                    "newest_100_for_endpoint": _paired(
                        samples, runs.newest_herald, runs.newest_raw
                    ),
                    "tenant_day_by_type": _paired(samples, runs.day_herald, runs.day_raw),
                    "page_50_filtered": _paired(samples // 4, runs.page50_herald, runs.page50_raw),
                    "cursor_walk_page": _paired(WALK_PAGES, runs.walk_herald, runs.walk_raw),
                    "count_30d_by_type_per_day": _paired(
                        STATS_SAMPLES, runs.stats_herald, runs.stats_raw
                    ),
                }
        finally:
            conn.close()
        assert server.process is not None
        results["server_peak_rss_mb"] = peak_rss_mb(server.process.pid)
    # the device states the devices family folds into this store scale with endpoints
    events_bytes = disk_bytes(store.path, leaving_out=DEVICE_TABLES)
    results["disk_bytes_per_event"] = round(events_bytes / store.events, 1)
    return results
