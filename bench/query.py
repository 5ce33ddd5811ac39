"""Query: p50/p99 of the list queries a console or integration runs, through a real server,
beside raw sqlite3 doing the same work on the same file: hand-written SQL for the same rows
(with the ``COUNT(*)`` a page's headers need), the records decompressed as Herald serves
them; the 30-day count from the same hourly ``event_counts`` rollup Herald reads (and, as a
row of its own, from a scan of the events, what the rollup saves).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    READER_CACHE_KIB,
    Mode,
    Result,
    disk_bytes,
    herald_server,
    peak_rss_mb,
    percentiles,
)
from bench.events import ENDPOINTS_PER_ORGANISATION, ORGANISATIONS
from bench.querystore import QueryStore
from herald.model import served_record
from herald.store.records import Codec
from herald.store.rollup import HOUR_MS
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
        dictionaries = conn.execute("SELECT id, data FROM dictionaries").fetchall()
        self.codec = Codec({int(key): bytes(data) for key, data in dictionaries})
        self._cursor: str | None = None  # the cursor walk's position, Herald's
        self._last: tuple[int, int] | None = None  # and raw's (ts, id)

    def _get(self, path: str, params: dict[str, Any]) -> httpx.Response:
        reply = self.client.get(path, params=params)
        if reply.status_code != 200:
            raise RuntimeError(f"{path} answered {reply.status_code}: {reply.text[:300]}")
        return reply

    def _raw(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        return self.conn.execute(sql, params).fetchall()

    def _records(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        """Rows whose first two columns are ``dictionary_id, body``, each record
        decompressed as Herald serves it (the rows, their records in place of the two)."""
        rows = self._raw(sql, params)
        return [(served_record(self.codec.unpack(row[0], row[1])), *row[2:]) for row in rows]

    def _day(self, n: int) -> tuple[int, int]:
        start = self.store.start_ms + DAY_MS * (1 + n % 28)
        return start, start + DAY_MS - 1

    # newest 100 of one endpoint
    def newest_herald(self, n: int) -> None:
        self._get(f"/endpoint/{_endpoint(n)}/event", {"per_page": 100})

    def newest_raw(self, n: int) -> None:
        args = (TENANT, _endpoint(n))
        where = "FROM events WHERE organisation_id = ? AND endpoint_id = ?"
        self._records(f"SELECT {RECORD} {where} ORDER BY ts DESC, id DESC LIMIT 101", args)
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
        self._records(f"SELECT {RECORD} {where} ORDER BY ts DESC, id DESC LIMIT 101", args)
        self._raw(f"SELECT COUNT(*) {where}", args)

    # page 50 of a filtered list
    def page50_herald(self, n: int) -> None:
        self._get("/event", {"type": (3, 5)[n % 2], "page": 50, "per_page": 100})

    def page50_raw(self, n: int) -> None:
        args = (TENANT, (3, 5)[n % 2])
        where = "FROM events WHERE organisation_id = ? AND type_id = ?"
        self._records(
            f"SELECT {RECORD} {where} ORDER BY ts DESC, id DESC LIMIT 101 OFFSET 4900", args
        )
        self._raw(f"SELECT COUNT(*) {where}", args)

    # a cursor walk: one page after another (the first call, the warm-up, is page 1)
    def walk_herald(self, n: int) -> None:
        params: dict[str, Any] = {"per_page": 100}
        if self._cursor:
            params["cursor"] = self._cursor
        self._cursor = self._get("/event", params).headers.get("X-Next-Cursor")

    def walk_raw(self, n: int) -> None:
        sql = f"SELECT {RECORD}, ts, id FROM events WHERE organisation_id = ?"
        args: tuple[Any, ...] = (TENANT,)
        if self._last is not None:
            sql += " AND (ts, id) < (?, ?)"
            args = (TENANT, *self._last)
        rows = self._records(sql + " ORDER BY ts DESC, id DESC LIMIT 101", args)
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
        """As Herald answers it: the whole hours from the hourly ``event_counts`` rollup,
        the partial hours at the two ends of the range from the events, summed by cell and
        ranked."""
        start, end = self.store.start_ms, self.store.end_ms
        first_hour = -(-start // HOUR_MS) * HOUR_MS
        end_hour = (end + 1) // HOUR_MS * HOUR_MS
        cells: dict[tuple[int, int], list[float]] = {}
        for low, high in ((start, first_hour - 1), (end_hour, end)):
            _add(cells, self._raw(STATS_FROM_EVENTS, (TENANT, low, high)))
        _add(cells, self._raw(STATS_FROM_COUNTS, (TENANT, first_hour, end_hour)))
        sorted(cells.items(), key=lambda cell: (cell[0][0], -cell[1][0], cell[0][1]))

    def stats_scan(self, n: int) -> None:
        """The same counts from a scan of the events (no rollup): what the rollup saves."""
        self._raw(STATS_FROM_EVENTS, (TENANT, self.store.start_ms, self.store.end_ms))


RECORD = "dictionary_id, body"
STATS_FROM_EVENTS = (
    f"SELECT ts / {DAY_MS} * {DAY_MS}, type_id, COUNT(*), SUM(volume_mb) FROM events "
    "WHERE organisation_id = ? AND ts >= ? AND ts <= ? GROUP BY 1, 2"
)
STATS_FROM_COUNTS = (
    f"SELECT hour_ms / {DAY_MS} * {DAY_MS}, type_id, SUM(events), SUM(volume_mb) "
    "FROM event_counts WHERE organisation_id = ? AND hour_ms >= ? AND hour_ms < ? GROUP BY 1, 2"
)


def _add(cells: dict[tuple[int, int], list[float]], rows: list[Any]) -> None:
    for day, type_id, count, volume in rows:
        cell = cells.setdefault((day, type_id), [0, 0.0])
        cell[0] += count
        cell[1] += volume or 0.0


def _alone(count: int, run: Fetch) -> dict[str, float]:
    """p50 / p99 of ``run`` by itself (a raw figure with no Herald counterpart)."""
    run(0)  # warm up
    samples = []
    for n in range(count):
        began = time.perf_counter()
        run(n)
        samples.append((time.perf_counter() - began) * 1000)
    return percentiles(samples)


# What each raw baseline does, in the table (the same work as Herald's, bar HTTP and JSON).
RAW_DOES = {
    "newest_100_for_endpoint": "sqlite3, same rows and count, records unpacked",
    "tenant_day_by_type": "sqlite3, same rows and count, records unpacked",
    "page_50_filtered": "sqlite3, same rows and count, records unpacked",
    "cursor_walk_page": "sqlite3, same rows, records unpacked",
    "count_30d_by_type_per_day": "sqlite3 on the same hourly rollup",
}


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
        conn.execute(f"PRAGMA cache_size = -{READER_CACHE_KIB}")  # as Herald's readers
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
                scan = _alone(STATS_SAMPLES, runs.stats_scan)
                results["count_30d_by_type_per_day"]["raw_sqlite_events_scan"] = scan
                for key, does in RAW_DOES.items():
                    results[key]["raw_does"] = does
        finally:
            conn.close()
        assert server.process is not None
        results["server_peak_rss_mb"] = peak_rss_mb(server.process.pid)
    # the device states the devices family folds into this store scale with endpoints
    events_bytes = disk_bytes(store.path, leaving_out=DEVICE_TABLES)
    results["disk_bytes_per_event"] = round(events_bytes / store.events, 1)
    return results
