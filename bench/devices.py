"""Device state (issues 18, 33): what keeping it costs HTTP batch ingest, how stale a read
of it is, and how fast one endpoint's state and the fleet list filtered by status answer.

- **Ingest cost**: the same batches posted to fresh ``herald serve`` processes with the
  device state off, kept in the server, and kept by a ``herald worker`` beside it (serve's
  off), alternating (off, serve, worker, worker, serve, off), in the same run. With it on,
  the rate counts until the owner has written the last event's state: in the server it runs
  on the API's GIL, so what it takes shows up as ingest slowed down or as lag at the end.
- **Staleness** at that (maximum) ingest rate: while the batches go in, a probe posts one
  event of an endpoint of its own every ``PROBE_SECONDS`` and reads that endpoint's written
  state (the row every process's reads answer from) until it shows the event: the time from
  the probe's acknowledgement to the first read reflecting it.
- **Lookups** run on the query family's store (10M events; 1M in quick mode) after its log
  is folded into the device states once (kept in ``bench/scratch`` with the store): one
  endpoint's connectivity, the fleet list filtered by status, the counts per status, each
  through HTTP beside raw SQL for the same rows on the same file.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
from tests.support.herald import HERALD
from tests.support.server import HeraldServer, free_port

from bench.common import (
    READER_CACHE_KIB,
    Mode,
    Result,
    herald_server,
    percentiles,
    rate,
    server_database,
    wait_device_state,
)
from bench.events import ORGANISATIONS
from bench.ingest import BATCH, BATCH_CLIENTS, _post_all, _recent_documents
from bench.query import TENANT, _paired
from bench.querystore import QueryStore
from herald.devices.projector import DeviceProjector
from herald.devices.state import Status
from herald.store.sqlite import SQLiteStore
from herald.timefmt import format_ms, now_ms

FOLD_CHUNK = 5000
OFF, SERVE, WORKER = "off", "serve", "worker"  # where the projector runs
ROUNDS = (OFF, SERVE, WORKER, WORKER, SERVE, OFF)
STATUSES = tuple(status.name for status in Status)
PROBE_SECONDS = 0.2  # between the staleness probe's events
PROBE_ENDPOINT = 999_999_999  # an endpoint no batch names


def devices_bench(mode: Mode, store: QueryStore, workdir: Path) -> Result:
    """Every device-state figure."""
    return {
        "ingest": ingest_cost(mode, workdir),
        **lookups(mode, store, workdir),
    }


# -- what keeping the state costs ingest --------------------------------------------------
def ingest_cost(mode: Mode, workdir: Path) -> Result:
    count = mode.http_batch_events // 2
    batches = [
        orjson.dumps(_recent_documents(count, 1, range(i, min(i + BATCH, count))))
        for i in range(0, count, BATCH)
    ]
    rounds: dict[str, list[dict[str, Any]]] = {OFF: [], SERVE: [], WORKER: []}
    for n, where in enumerate(ROUNDS):
        rounds[where].append(_ingest_round(workdir / f"ingest-{n}", batches, where))
    off = _mean(rounds[OFF], "events_per_s")
    figure: Result = {
        "events_per_round": count + BATCH,  # and the warm-up batch
        "rounds": len(ROUNDS),
        "clients": BATCH_CLIENTS,
        "off_events_per_s": off,
    }
    for where in (SERVE, WORKER):
        folded = _mean(rounds[where], "folded_events_per_s")
        figure[where] = {
            "events_per_s": _mean(rounds[where], "events_per_s"),
            "folded_events_per_s": folded,
            "lag_after_last_post_s": _mean(rounds[where], "lag_s"),
            "cost": round(1 - folded / off, 3),
            "staleness": percentiles([ms for r in rounds[where] for ms in r["staleness_ms"]]),
        }
    return figure


def _ingest_round(workdir: Path, batches: list[bytes], where: str) -> dict[str, Any]:
    env = {
        "HERALD_SQLITE_SYNCHRONOUS": "FULL",
        "HERALD_RATE_LIMIT_PER_SECOND": "0",
        "HERALD_DELIVERY_ENABLED": "false",
        "HERALD_DEVICE_STATE_ENABLED": "true" if where == SERVE else "false",
    }
    with herald_server(workdir, **env) as server, _worker(server, where == WORKER):
        url, database = f"{server.url}/api/v1/event", server_database(server)

        def settle() -> None:  # the warm-up batch folded before the clock starts
            if where != OFF:
                wait_device_state(database)

        with _probing(url, server.admin_token, database, where != OFF) as staleness:
            events, seconds = asyncio.run(
                _post_all(url, server.admin_token, batches, BATCH_CLIENTS, BATCH, settle)
            )
        lag = wait_device_state(database) if where != OFF else 0.0
    return {
        "events_per_s": rate(events, seconds),
        "folded_events_per_s": rate(events, seconds + lag),
        "lag_s": round(lag, 3),
        "staleness_ms": staleness,
    }


@contextmanager
def _probing(url: str, token: str, database: Path, wanted: bool) -> Iterator[list[float]]:
    """While the block runs: every ``PROBE_SECONDS`` one event of ``PROBE_ENDPOINT`` posted
    and its state read from the database until it shows the event; the milliseconds from
    each acknowledgement to that read."""
    found: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        headers = {"Authorization": f"Bearer {token}"}
        sql = "SELECT last_event_ms FROM device_states WHERE endpoint_key = ?"
        with (
            httpx.Client(headers=headers, timeout=60) as client,
            sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn,
        ):
            while not stop.wait(PROBE_SECONDS):
                stamp = now_ms() - 1000  # past the events before, within their hour
                event = {
                    "event_type": {"id": 10001},
                    "organisation": {"id": 1},
                    "timestamp": format_ms(stamp),
                    "endpoint": {"id": PROBE_ENDPOINT},
                }
                reply = client.post(url, json=event)
                acknowledged = time.perf_counter()
                if reply.status_code != 201:
                    raise RuntimeError(f"the probe answered {reply.status_code}: {reply.text}")
                while not stop.is_set():
                    row = conn.execute(sql, (str(PROBE_ENDPOINT),)).fetchone()
                    if row is not None and row[0] >= stamp:
                        found.append((time.perf_counter() - acknowledged) * 1000)
                        break
                    time.sleep(0.005)

    thread = threading.Thread(target=probe, name="staleness-probe", daemon=True)
    if wanted:
        thread.start()
    try:
        yield found
    finally:
        stop.set()
        if wanted:
            thread.join(60)


@contextmanager
def _worker(server: HeraldServer, wanted: bool) -> Iterator[None]:
    """``herald worker`` keeping the device states on the server's database (if wanted)."""
    if not wanted:
        yield
        return
    env = {**server.env, "HERALD_DEVICE_STATE_ENABLED": "true"}
    args = ["worker", "--database", server.database_url, "--port", str(free_port())]
    with (server.workdir / "worker.log").open("ab") as log:
        process = subprocess.Popen(
            [*HERALD, *args], cwd=server.workdir, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        yield
    finally:
        process.terminate()
        process.wait(10)


def _mean(rounds: list[dict[str, Any]], key: str) -> float:
    return round(sum(float(r[key]) for r in rounds) / len(rounds), 1)


# -- lookups on the query store -----------------------------------------------------------
def _fold(store: QueryStore) -> Result:
    """Fold the store's log into its device states (once: the cursor is kept in the file)."""
    opened = SQLiteStore(store.url)
    try:
        began = time.perf_counter()
        folded = DeviceProjector(opened, chunk=FOLD_CHUNK).catch_up()
        seconds = time.perf_counter() - began
    finally:
        opened.close()
    with sqlite3.connect(f"file:{store.path}?mode=ro", uri=True) as conn:
        endpoints = conn.execute("SELECT COUNT(*) FROM device_states").fetchone()[0]
    figure: Result = {"endpoints": endpoints}
    if folded:  # this run folded the log (else an earlier run did)
        figure["folded_events"] = folded
        figure["fold_events_per_s"] = rate(folded, seconds)
    return figure


class _Runs:
    def __init__(self, client: httpx.Client, conn: sqlite3.Connection) -> None:
        self.client, self.conn = client, conn
        # the tenant's endpoints that have a state (a few of its ids have no event)
        found = conn.execute(
            "SELECT endpoint_key FROM device_states WHERE organisation_id = ?", (TENANT,)
        )
        self.keys: list[str] = sorted(str(key) for (key,) in found)

    def _key(self, n: int) -> str:
        return self.keys[(n * 7919) % len(self.keys)]

    def _get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        reply = self.client.get(path, params=params)
        if reply.status_code != 200:
            raise RuntimeError(f"{path} answered {reply.status_code}: {reply.text[:300]}")
        return reply

    def _raw(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        return self.conn.execute(sql, params).fetchall()

    # one endpoint's state
    def lookup_herald(self, n: int) -> None:
        self._get(f"/endpoint/{self._key(n)}/connectivity")

    def lookup_raw(self, n: int) -> None:
        sql = "SELECT state FROM device_states WHERE organisation_id = ? AND endpoint_key = ?"
        for (state,) in self._raw(sql, (TENANT, self._key(n))):
            orjson.loads(state)

    # the fleet list filtered by status: a page of 100, newest first, with its count
    def fleet_herald(self, n: int) -> None:
        params = {"status": STATUSES[n % len(STATUSES)], "per_page": 100, "page": 1 + n % 5}
        self._get("/endpoint", params)

    def fleet_raw(self, n: int) -> None:
        args = (TENANT, n % len(STATUSES))
        where = "FROM device_states WHERE organisation_id = ? AND status = ?"
        rows = self._raw(
            f"SELECT state {where} ORDER BY last_event_ms DESC, organisation_id DESC, "
            "endpoint_key DESC LIMIT 100 OFFSET ?",
            (*args, 100 * (n % 5)),
        )
        for (state,) in rows:
            orjson.loads(state)
        self._raw(f"SELECT COUNT(*) {where}", args)

    # the dashboard's counts per status
    def counts_herald(self, n: int) -> None:
        self._get("/endpoint/status_counts")

    def counts_raw(self, n: int) -> None:
        self._raw(
            "SELECT status, COUNT(*) FROM device_states WHERE organisation_id = ? GROUP BY status",
            (TENANT,),
        )


def lookups(mode: Mode, store: QueryStore, workdir: Path) -> Result:
    folded = _fold(store)
    env = {
        "HERALD_RETENTION_DAYS": "366",
        "HERALD_DELIVERY_ENABLED": "false",
        "HERALD_DEVICE_STATE_ENABLED": "false",  # folded above: nothing left to fold
        "HERALD_RATE_LIMIT_PER_SECOND": "0",
    }
    with herald_server(workdir / "lookups", database_url=store.url, **env) as server:
        token = server.create_token(TENANT, "event:read")
        conn = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True)
        conn.execute(f"PRAGMA cache_size = -{READER_CACHE_KIB}")  # as Herald's readers
        try:
            with server.client(token) as client:
                runs = _Runs(client, conn)
                samples = mode.query_samples
                return {
                    "store_events": store.events,
                    "organisations": len(ORGANISATIONS),
                    **folded,
                    "state_lookup": _paired(samples, runs.lookup_herald, runs.lookup_raw),
                    "fleet_by_status": _paired(samples, runs.fleet_herald, runs.fleet_raw),
                    "status_counts": _paired(samples // 4, runs.counts_herald, runs.counts_raw),
                }
        finally:
            conn.close()
