"""Device state (issue 18): what the projector costs HTTP batch ingest, and how fast one
endpoint's state and the fleet list filtered by status answer.

- **Ingest cost**: the same batches posted to fresh ``herald serve`` processes with the
  projector off and on, alternating (off, on, on, off), in the same run. With it on, the
  rate counts until the projector has folded the last event (it runs in the server, on the
  API's GIL, so what it takes shows up as ingest slowed down or as lag at the end).
- **Lookups** run on the query family's store (10M events; 1M in quick mode) after its log
  is folded into the device states once (kept in ``bench/scratch`` with the store): one
  endpoint's connectivity, the fleet list filtered by status, the counts per status, each
  through HTTP beside raw SQL for the same rows on the same file.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from tests.support.server import HeraldServer

from bench.common import Mode, Result, herald_server, rate
from bench.events import ORGANISATIONS
from bench.ingest import BATCH, BATCH_CLIENTS, _post_all, _recent_documents
from bench.query import TENANT, _endpoint, _paired
from bench.querystore import QueryStore
from herald.devices.projector import DeviceProjector
from herald.devices.state import Status
from herald.store.sqlite import SQLiteStore

FOLD_CHUNK = 5000
ROUNDS = (False, True, True, False)  # projector on?
STATUSES = tuple(status.name for status in Status)


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
    rounds: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for n, on in enumerate(ROUNDS):
        rounds[on].append(_ingest_round(workdir / f"ingest-{n}", batches, on))
    off = _mean(rounds[False], "events_per_s")
    posted = _mean(rounds[True], "events_per_s")
    folded = _mean(rounds[True], "folded_events_per_s")
    return {
        "events_per_round": count + BATCH,  # and the warm-up batch
        "rounds": len(ROUNDS),
        "clients": BATCH_CLIENTS,
        "off_events_per_s": off,
        "on_events_per_s": posted,
        "on_folded_events_per_s": folded,
        "lag_after_last_post_s": _mean(rounds[True], "lag_s"),
        "cost": round(1 - folded / off, 3),
    }


def _ingest_round(workdir: Path, batches: list[bytes], on: bool) -> dict[str, float]:
    env = {
        "HERALD_SQLITE_SYNCHRONOUS": "FULL",
        "HERALD_RATE_LIMIT_PER_SECOND": "0",
        "HERALD_DELIVERY_ENABLED": "false",
        "HERALD_DEVICE_STATE_ENABLED": "true" if on else "false",
    }
    with herald_server(workdir, **env) as server:
        url = f"{server.url}/api/v1/event"
        events, seconds = asyncio.run(
            _post_all(url, server.admin_token, batches, BATCH_CLIENTS, BATCH)
        )
        lag = _wait_folded(server) if on else 0.0
    return {
        "events_per_s": rate(events, seconds),
        "folded_events_per_s": rate(events, seconds + lag),
        "lag_s": round(lag, 3),
    }


def _wait_folded(server: HeraldServer, timeout: float = 600) -> float:
    """Seconds until the projector's cursor reaches the end of the log."""
    path = server.database_url.removeprefix("sqlite:///")
    began = time.perf_counter()
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        while True:
            cursor = conn.execute("SELECT cursor_seq FROM device_projection").fetchone()[0]
            if cursor >= conn.execute("SELECT MAX(seq) FROM events").fetchone()[0]:
                return time.perf_counter() - began
            if time.perf_counter() - began > timeout:
                raise RuntimeError("the projector did not catch up")
            time.sleep(0.02)


def _mean(rounds: list[dict[str, float]], key: str) -> float:
    return round(sum(r[key] for r in rounds) / len(rounds), 1)


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

    def _get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        reply = self.client.get(path, params=params)
        if reply.status_code != 200:
            raise RuntimeError(f"{path} answered {reply.status_code}: {reply.text[:300]}")
        return reply

    def _raw(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        return self.conn.execute(sql, params).fetchall()

    # one endpoint's state
    def lookup_herald(self, n: int) -> None:
        self._get(f"/endpoint/{_endpoint(n)}/connectivity")

    def lookup_raw(self, n: int) -> None:
        sql = "SELECT state FROM device_states WHERE organisation_id = ? AND endpoint_key = ?"
        for (state,) in self._raw(sql, (TENANT, str(_endpoint(n)))):
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
        conn.execute("PRAGMA cache_size = -32000")  # as Herald's readers
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
