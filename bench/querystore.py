"""The query benchmark's store: N simulated events over 30 days, built once and reused.

Rows come from a pool of events that took Herald's own write path (``EventIn``,
``build_event``, ``event_row``), restamped with their own id and time. They are bulk-loaded
with the secondary indexes dropped and rebuilt after, the fast way to fill a big table; the
result is the schema and content Herald itself would have written.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench.common import SCRATCH, wal_checkpoint
from bench.events import ORGANISATIONS, document, event_id, new_events
from bench.ingest import CODEC, INSERT, NAMES
from herald.catalog import load_catalog
from herald.model import NewEvent
from herald.store import migrator, rollup
from herald.store.sql import INSERT_DEVICE_KEYS, device_keys, event_row
from herald.store.sqlite import SQLiteStore
from herald.timefmt import format_ms, now_ms

DAYS = 30
POOL = 400_000
CHUNK = 50_000
META_KEY = "bench.query_store"
_SCHEMA = migrator.migrations("sqlite")[-1].version


@dataclass(frozen=True)
class QueryStore:
    """A built store: its file, how many events, and the time range they cover."""

    path: Path
    events: int
    start_ms: int
    end_ms: int

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"


def query_store(events: int) -> QueryStore:
    """The store of ``events`` events in ``bench/scratch``, built if absent; one built by an
    older Herald is brought up to date by the migrations it lacks (as a deployment's is),
    not built again: a 10M store takes the better part of an hour."""
    path = SCRATCH / f"query-{events}.db"
    found = _read_meta(path)
    if found is not None and found[0].events == events:
        store, schema = found
        if schema != _SCHEMA:
            _migrate(store)
        return store
    for stale in path.parent.glob(path.name + "*"):
        stale.unlink()
    return _build(path, events)


def _read_meta(path: Path) -> tuple[QueryStore, int | None] | None:
    """The store described by its meta, with the schema version it was stamped with."""
    if not path.exists():
        return None
    # Read-only, and only a store without its meta counts as unbuilt: a busy or locked file
    # (another process folding it) must not be taken for one, deleted and built again.
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60) as conn:
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (META_KEY,)).fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
            return None
    if row is None:
        return None
    meta = orjson.loads(row[0])
    return QueryStore(path, meta["events"], meta["start_ms"], meta["end_ms"]), meta.get("schema")


def _migrate(store: QueryStore) -> None:
    """Apply the migrations the store lacks and rewrite the rows they leave to
    ``compact_records`` (as ``herald db migrate`` does), and stamp it with the current schema."""
    opened = SQLiteStore(store.url)
    began = time.perf_counter()
    try:
        opened.maintenance.migrate()
        total = opened.maintenance.uncompacted_events()
        done = 0

        def report(rows: int) -> None:
            nonlocal done
            done += rows
            if done % 500_000 < rows:
                print(f"compacting {store.path.name}: {done:,} of {total:,}")  # noqa: T201

        opened.maintenance.compact_records(report)
    finally:
        opened.close()
    with sqlite3.connect(store.path) as conn:
        (value,) = conn.execute("SELECT value FROM meta WHERE key = ?", (META_KEY,)).fetchone()
        meta = {**orjson.loads(value), "schema": _SCHEMA}
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = ?", (orjson.dumps(meta).decode(), META_KEY)
        )
    took = time.perf_counter() - began
    print(f"migrated {store.path.name} to schema {_SCHEMA} in {took:.0f} s")  # noqa: T201


def _pool(received_ms: int) -> list[NewEvent]:
    built: list[NewEvent] = []
    catalog = load_catalog()
    for start in range(0, POOL, CHUNK):
        docs = [document(j) for j in range(start, start + CHUNK)]
        built.extend(new_events(docs, catalog, received_ms, NAMES))
    return built


def _rows(
    pool: list[NewEvent], events: int, start_ms: int, end_ms: int
) -> Iterator[tuple[object, ...]]:
    span = end_ms - start_ms
    for i in range(events):
        ts = start_ms + span * i // events
        template = pool[(i * 2_654_435_761) % POOL]
        stamp = format_ms(ts)
        new_id = event_id(i, ts)
        record = {**template.record, "id": new_id, "timestamp": stamp, "received": stamp}
        event = dataclasses.replace(template, timestamp_ms=ts, received_ms=ts, record=record)
        yield event_row(event, new_id, CODEC.pack(orjson.dumps(record)), CODEC.newest, lean=True)


def _build(path: Path, events: int) -> QueryStore:
    path.parent.mkdir(parents=True, exist_ok=True)
    end_ms = now_ms()
    start_ms = end_ms - DAYS * 86_400_000
    began = time.perf_counter()
    store = SQLiteStore(f"sqlite:///{path}")
    store.maintenance.migrate()
    for organisation in ORGANISATIONS:
        store.organisations.create(NAMES[organisation], organisation)
    store.close()
    pool = _pool(end_ms)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = OFF")  # scratch data: no journal while loading
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -500000")
        conn.execute("PRAGMA temp_store = MEMORY")
        indexes = [
            sql
            for (sql,) in conn.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' "
                "AND sql IS NOT NULL"
            )
        ]
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' "
            "AND sql IS NOT NULL"
        ).fetchall():
            conn.execute(f"DROP INDEX {name}")
        rows = _rows(pool, events, start_ms, end_ms)
        while True:
            chunk = [row for _, row in zip(range(CHUNK), rows, strict=False)]
            if not chunk:
                break
            conn.execute("BEGIN")
            conn.executemany(INSERT, chunk)
            conn.executemany(rollup.UPSERT, rollup.deltas(chunk))  # as append counts them
            conn.execute("COMMIT")
        # The events are the pool's restamped: their device keys are the pool's.
        conn.executemany(INSERT_DEVICE_KEYS, device_keys(pool))
        for sql in indexes:
            conn.execute(sql)
        meta = {"events": events, "start_ms": start_ms, "end_ms": end_ms, "schema": _SCHEMA}
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)", (META_KEY, orjson.dumps(meta).decode())
        )
        conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()
    wal_checkpoint(path)
    print(f"built {path.name}: {events:,} events in {time.perf_counter() - began:.0f} s")  # noqa: T201
    return QueryStore(path, events, start_ms, end_ms)
