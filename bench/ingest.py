"""Ingest: events/s through the store and through HTTP, beside raw sqlite3 ``executemany``
(into Herald's own table, and into a plain table with the two indexes a log needs); the CPU
``serve`` spends per event of an HTTP batch; provider ingest (1NCE batches of 3,000)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
from tests.support.server import HeraldServer

from bench.common import (
    Mode,
    Result,
    cpu_seconds,
    herald_server,
    percentiles,
    rate,
    server_database,
    wait_device_state,
)
from bench.events import ORGANISATIONS, document, new_events, provider_record
from herald.catalog import load_catalog
from herald.ids import IdGenerator
from herald.model import NewEvent
from herald.store.records import SHIPPED_ID, Codec, shipped_dictionary
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
CODEC = Codec({SHIPPED_ID: shipped_dictionary()})  # as a new store writes
NAMES = {organisation: f"Organisation {organisation}" for organisation in ORGANISATIONS}
PLAIN_INDEXES = ("organisation_id, ts", "organisation_id, endpoint_id, ts")
"""The plain baseline's indexes: an organisation's log, an endpoint's."""
PROVIDER_BATCH = 3000  # records in a 1NCE request, the most a provider batch holds
NEIGHBOUR_READS_ALONE = 200
NEIGHBOUR_PAUSE_S = 0.01


def _fresh_store(path: Path) -> SQLiteStore:
    store = SQLiteStore(f"sqlite:///{path}")
    store.maintenance.migrate()
    for organisation, name in NAMES.items():
        store.organisations.create(name, organisation)
    return store


def _raw_connection(path: Path) -> sqlite3.Connection:
    """A plain connection with the pragmas Herald's writer uses (WAL, synchronous FULL...)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA cache_size = -16000")
    conn.execute("PRAGMA wal_autocheckpoint = 10000")
    return conn


def _plain_connection(path: Path) -> sqlite3.Connection:
    """The same columns in a plain table with only ``PLAIN_INDEXES``."""
    conn = _raw_connection(path)
    conn.execute(f"CREATE TABLE events ({', '.join(EVENT_COLUMNS)})")
    for number, columns in enumerate(PLAIN_INDEXES):
        conn.execute(f"CREATE INDEX plain_{number} ON events ({columns})")
    return conn


def _recent_documents(
    count: int, organisation_id: int | None = None, part: range | None = None
) -> list[dict[str, object]]:
    """``count`` events over the last hour (or the ``part`` of them), oldest first."""
    start = now_ms() - 3_600_000
    return [
        document(i, start + i * 3_000_000 // count, organisation_id)
        for i in (part if part is not None else range(count))
    ]


def store_ingest(mode: Mode, workdir: Path) -> Result:
    """Herald's ``store.log.append`` vs raw ``executemany`` of the same rows, batch by batch."""
    catalog, generator = load_catalog(), IdGenerator(1)
    count = mode.ingest_events
    herald = _fresh_store(workdir / "store.db")
    _fresh_store(workdir / "raw.db").close()
    _fresh_store(workdir / "bare.db").close()
    raw = _raw_connection(workdir / "raw.db")
    plain = _plain_connection(workdir / "plain.db")
    bare = _raw_connection(workdir / "bare.db")  # what the secondary indexes cost
    for (name,) in bare.execute(
        "SELECT name FROM sqlite_master WHERE tbl_name = 'events' AND sql LIKE 'CREATE%INDEX%'"
    ).fetchall():
        bare.execute(f"DROP INDEX {name}")
    herald_s = raw_s = bare_s = plain_s = 0.0
    try:
        # Interleaved batch by batch, so all see the same disk and cache conditions; each
        # batch is prepared (validated, built, rows made) before the clocks start.
        for start in range(0, count, BATCH):
            part = range(start, min(start + BATCH, count))
            events = new_events(_recent_documents(count, None, part), catalog, now_ms(), NAMES)
            ids = generator.next_ids(len(events))
            rows = [_row(event, event_id) for event, event_id in zip(events, ids, strict=True)]
            raw_s += _insert(raw, rows)
            plain_s += _insert(plain, rows)
            bare_s += _insert(bare, rows)
            began = time.perf_counter()
            herald.log.append(events, ids)
            herald_s += time.perf_counter() - began
    finally:
        raw.close()
        plain.close()
        bare.close()
        herald.close()
    herald_rate, raw_rate = rate(count, herald_s), rate(count, raw_s)
    return {
        "events": count,
        "batch": BATCH,
        "herald_events_per_s": herald_rate,
        "raw_sqlite_events_per_s": raw_rate,
        "ratio": round(herald_rate / raw_rate, 3),
        "raw_sqlite_without_indexes_events_per_s": rate(count, bare_s),
        "raw_plain_events_per_s": rate(count, plain_s),
    }


def _insert(conn: sqlite3.Connection, rows: list[tuple[object, ...]]) -> float:
    """One transaction of ``executemany``; seconds taken."""
    began = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(INSERT, rows)
    conn.execute("COMMIT")
    return time.perf_counter() - began


def _row(event: NewEvent, event_id: int) -> tuple[object, ...]:
    record = {**event.record, "id": event_id}
    return event_row(event, event_id, CODEC.pack(orjson.dumps(record)), CODEC.newest, lean=True)


async def _post_all(
    url: str,
    token: str,
    bodies: list[bytes],
    clients: int,
    per_body: int,
    settle: Callable[[], object] | None = None,
) -> tuple[int, float]:
    """Post every body from ``clients`` concurrent keep-alive clients; events and seconds.
    ``settle`` runs after the warm-up post, before the clock starts."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=60) as client:

        async def worker() -> None:
            while not queue.empty():
                reply = await client.post(url, content=queue.get_nowait())
                if reply.status_code not in (200, 201) or _unstored(reply):
                    raise RuntimeError(f"ingest answered {reply.status_code}: {reply.text[:300]}")

        await client.post(url, content=bodies[0])  # warm up: connections, first-call paths
        if settle is not None:
            settle()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        seconds = time.perf_counter() - started
    return len(bodies) * per_body, seconds


def _unstored(reply: httpx.Response) -> bool:
    """A provider batch's answer (200) holding records that were not stored."""
    if reply.status_code != 200:
        return False
    answer = orjson.loads(reply.content)
    return bool(answer.get("quarantined") or answer.get("refused"))


def http_ingest(mode: Mode, workdir: Path, raw_rates: dict[str, float]) -> Result:
    """``POST /api/v1/event`` to one server process: batches of 1000, single events; then
    1NCE records to ``POST /api/v1/ingest/1nce`` in batches of 3,000.

    ``serve`` keeps device state by default: each rate counts until its projector has folded
    the last event (the posting alone is reported beside it), and each part starts on an
    idle server. ``serve_cpu_us_per_event``: the server process's CPU (every thread: HTTP,
    codec, store, device state) over the events, from posting to folded."""
    count = mode.http_batch_events
    batches = [
        orjson.dumps(_recent_documents(count, 1, range(i, min(i + BATCH, count))))
        for i in range(0, count, BATCH)
    ]
    singles = [orjson.dumps(doc) for doc in _recent_documents(mode.http_single_events, 1)]
    env = {"HERALD_SQLITE_SYNCHRONOUS": "FULL", "HERALD_RATE_LIMIT_PER_SECOND": "0"}
    with herald_server(workdir / "http", **env) as server:
        url = f"{server.url}/api/v1/event"
        batch = _posted_and_folded(server, url, batches, BATCH_CLIENTS, BATCH)
        single = _posted_and_folded(server, url, singles, SINGLE_CLIENTS, 1)
        provider = _posted_and_folded(
            server,
            f"{server.url}/api/v1/ingest/1nce?organisation=1",
            _provider_batches(max(1, count // 2 // PROVIDER_BATCH) * PROVIDER_BATCH),
            BATCH_CLIENTS,
            PROVIDER_BATCH,
        )
        # the server idle now (the singles folded): the neighbour's "alone" reads are alone
        neighbour = neighbour_reads(server, batches[: len(batches) // 2])
    for part in (batch, single):
        part["ratio_to_raw_sqlite"] = round(part["events_per_s"] / raw_rates["herald_table"], 3)
        part["ratio_to_raw_plain"] = round(part["events_per_s"] / raw_rates["plain_table"], 3)
    provider["ratio_to_api_batch"] = round(provider["events_per_s"] / batch["events_per_s"], 3)
    return {
        "batch": {**batch, "clients": BATCH_CLIENTS},
        "single": {**single, "clients": SINGLE_CLIENTS},
        "provider_1nce": {**provider, "clients": BATCH_CLIENTS, "batch": PROVIDER_BATCH},
        "neighbour_read": neighbour,
    }


def _provider_batches(count: int) -> list[bytes]:
    """``count`` 1NCE records over the last hour, in batches of ``PROVIDER_BATCH`` (whole
    ones: the rate counts every batch as full)."""
    start = now_ms() - 3_600_000
    records = [provider_record(i, start + i * 3_000_000 // count) for i in range(count)]
    return [orjson.dumps(records[i : i + PROVIDER_BATCH]) for i in range(0, count, PROVIDER_BATCH)]


def _posted_and_folded(
    server: HeraldServer, url: str, bodies: list[bytes], clients: int, per_body: int
) -> Result:
    """Post ``bodies``, then wait until the device state has folded them: the rate until
    then, the posting's rate and the lag after the last post."""
    database = server_database(server)
    assert server.process is not None
    pid = server.process.pid
    cpu: list[float] = []

    def settle() -> None:
        wait_device_state(database)
        cpu.append(cpu_seconds(pid))

    events, posting_s = asyncio.run(
        _post_all(url, server.admin_token, bodies, clients, per_body, settle)
    )
    lag_s = wait_device_state(database)
    folded = rate(events, posting_s + lag_s)
    return {
        "events": events,
        "events_per_s": folded,
        "posting_events_per_s": rate(events, posting_s),
        "lag_after_last_post_s": round(lag_s, 3),
        "serve_cpu_us_per_event": round((cpu_seconds(pid) - cpu[0]) * 1e6 / events, 1),
    }


def neighbour_reads(server: HeraldServer, batches: list[bytes]) -> Result:
    """Another tenant's read of its newest event, p50 / p99, alone and while organisation 1
    posts ``batches`` from BATCH_CLIENTS clients: what one tenant's ingest does to the
    others' requests."""
    token = server.create_token(server.create_org("Neighbour"), "event:read")
    url = f"{server.url}/api/v1/event"
    with server.client(token) as client:
        alone: list[float] = []
        while len(alone) < NEIGHBOUR_READS_ALONE:
            _read_newest(client, alone)
        during: list[float] = []
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                _read_newest(client, during)

        poller = threading.Thread(target=poll)
        poller.start()
        try:
            asyncio.run(_post_all(url, server.admin_token, batches, BATCH_CLIENTS, BATCH))
        finally:
            stop.set()
            poller.join()
    return {"alone": percentiles(alone), "during_batch_ingest": percentiles(during)}


def _read_newest(client: httpx.Client, samples: list[float]) -> None:
    began = time.perf_counter()
    reply = client.get("/event", params={"per_page": 1})
    samples.append((time.perf_counter() - began) * 1000)
    if reply.status_code != 200:
        raise RuntimeError(f"the neighbour's read answered {reply.status_code}")
    time.sleep(NEIGHBOUR_PAUSE_S)
