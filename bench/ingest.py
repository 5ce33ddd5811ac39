"""Ingest: events/s through the store and through HTTP, beside raw sqlite3 ``executemany``."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import httpx
import orjson

from bench.common import Mode, Result, herald_server, rate
from bench.events import ORGANISATIONS, document, new_events
from herald.catalog import load_catalog
from herald.ids import IdGenerator
from herald.model import NewEvent
from herald.store.sql import EVENT_COLUMNS, event_row
from herald.store.sqlite import SQLiteStore
from herald.timefmt import now_ms

BATCH = 1000
SINGLE_CLIENTS = 16
BATCH_CLIENTS = 2
INSERT = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
)
NAMES = {organisation: f"Organisation {organisation}" for organisation in ORGANISATIONS}


def _fresh_store(path: Path) -> SQLiteStore:
    store = SQLiteStore(f"sqlite:///{path}")
    store.migrate()
    for organisation, name in NAMES.items():
        store.create_organisation(name, organisation)
    return store


def _raw_connection(path: Path) -> sqlite3.Connection:
    """A plain connection with the pragmas Herald's writer uses (WAL, synchronous FULL)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA cache_size = -32000")
    return conn


def _recent_documents(count: int, organisation_id: int | None = None) -> list[dict[str, object]]:
    start = now_ms() - 3_600_000
    return [document(i, start + i * 3_000_000 // count, organisation_id) for i in range(count)]


def store_ingest(mode: Mode, workdir: Path) -> Result:
    """Herald's ``store.append`` vs raw ``executemany`` of the same rows, batch by batch."""
    events = new_events(_recent_documents(mode.ingest_events), load_catalog(), now_ms(), NAMES)
    ids = IdGenerator(1).next_ids(len(events))
    raw_rows = [_row(event, event_id) for event, event_id in zip(events, ids, strict=True)]
    herald = _fresh_store(workdir / "store.db")
    _fresh_store(workdir / "raw.db").close()
    raw = _raw_connection(workdir / "raw.db")
    herald_s = raw_s = 0.0
    try:
        # Interleaved batch by batch, so both see the same disk and cache conditions.
        for start in range(0, len(events), BATCH):
            rows = raw_rows[start : start + BATCH]
            began = time.perf_counter()
            raw.execute("BEGIN IMMEDIATE")
            raw.executemany(INSERT, rows)
            raw.execute("COMMIT")
            raw_s += time.perf_counter() - began
            began = time.perf_counter()
            herald.append(events[start : start + BATCH], ids[start : start + BATCH])
            herald_s += time.perf_counter() - began
    finally:
        raw.close()
        herald.close()
    herald_rate, raw_rate = rate(len(events), herald_s), rate(len(events), raw_s)
    return {
        "events": len(events),
        "batch": BATCH,
        "herald_events_per_s": herald_rate,
        "raw_sqlite_events_per_s": raw_rate,
        "ratio": round(herald_rate / raw_rate, 3),
    }


def _row(event: NewEvent, event_id: int) -> tuple[object, ...]:
    record = {**event.record, "id": event_id}
    return event_row(event, event_id, orjson.dumps(record))


async def _post_all(
    url: str, token: str, bodies: list[bytes], clients: int, per_body: int
) -> tuple[int, float]:
    """Post every body from ``clients`` concurrent keep-alive clients; events and seconds."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=60) as client:

        async def worker() -> None:
            while not queue.empty():
                reply = await client.post(url, content=queue.get_nowait())
                if reply.status_code != 201:
                    raise RuntimeError(f"ingest answered {reply.status_code}: {reply.text[:300]}")

        await client.post(url, content=bodies[0])  # warm up: connections, first-call paths
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        seconds = time.perf_counter() - started
    return len(bodies) * per_body, seconds


def http_ingest(mode: Mode, workdir: Path, raw_rate: float) -> Result:
    """``POST /api/v1/event`` to one server process: batches of 1000, single events."""
    batch_docs = _recent_documents(mode.http_batch_events, organisation_id=1)
    batches = [orjson.dumps(batch_docs[i : i + BATCH]) for i in range(0, len(batch_docs), BATCH)]
    singles = [orjson.dumps(doc) for doc in _recent_documents(mode.http_single_events, 1)]
    with herald_server(workdir / "http", HERALD_SQLITE_SYNCHRONOUS="FULL") as server:
        url = f"{server.url}/api/v1/event"
        batch_events, batch_s = asyncio.run(
            _post_all(url, server.admin_token, batches, BATCH_CLIENTS, BATCH)
        )
        single_events, single_s = asyncio.run(
            _post_all(url, server.admin_token, singles, SINGLE_CLIENTS, 1)
        )
    batch_rate, single_rate = rate(batch_events, batch_s), rate(single_events, single_s)
    return {
        "batch": {
            "events": batch_events,
            "clients": BATCH_CLIENTS,
            "events_per_s": batch_rate,
            "ratio_to_raw_sqlite": round(batch_rate / raw_rate, 3),
        },
        "single": {
            "events": single_events,
            "clients": SINGLE_CLIENTS,
            "events_per_s": single_rate,
            "ratio_to_raw_sqlite": round(single_rate / raw_rate, 3),
        },
    }
