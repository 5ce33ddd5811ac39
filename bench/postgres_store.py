"""SQLite vs PostgreSQL at the store: append throughput (1 and 4 writers), log reads, pages.

    .venv/bin/python -m bench.postgres_store [--events 100000]

Needs PostgreSQL at 127.0.0.1:5432 (a throwaway database is created and dropped); writes
``bench/results/postgres_store.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import psycopg
from tests.support import postgres

from bench.events import document, new_events
from bench.ingest import NAMES
from herald.catalog import load_catalog
from herald.events.types import EventQuery
from herald.model import NewEvent
from herald.query.filter import EventFilter
from herald.store import Store, open_store
from herald.timefmt import format_ms, now_ms

BATCH = 1000
POOL = 20_000
FIRST_ID = 1_000_000
_POOL: list[NewEvent] = []
RESULTS = Path(__file__).resolve().parent / "results" / "postgres_store.json"


def _pool() -> list[NewEvent]:
    """The simulator's events (``bench.events``: endpoints with their SIM, ICCID, IMSI and
    target, a fleet's mix of types), built once through Herald's write path."""
    if not _POOL:
        documents = [document(i) for i in range(POOL)]
        _POOL.extend(new_events(documents, load_catalog(), now_ms(), NAMES))
    return _POOL


def _events(count: int, start: int) -> list[NewEvent]:
    """Events ``start`` onwards, the pool's restamped 10 ms apart, rising as a fleet's
    arrive (out-of-order times split index pages: BENCHMARKS #61)."""
    pool, first = _pool(), now_ms() - 86_400_000
    made = []
    for n in range(start, start + count):
        ts = first + (n - FIRST_ID) * 10
        template = pool[n % POOL]
        record = {**template.record, "timestamp": format_ms(ts)}
        made.append(dataclasses.replace(template, timestamp_ms=ts, record=record))
    return made


def _batches(first_id: int, count: int) -> list[tuple[list[NewEvent], list[int]]]:
    """Events ``first_id`` onwards, ``count`` of them, in batches of BATCH with their ids."""
    made = []
    for start in range(first_id, first_id + count, BATCH):
        size = min(BATCH, first_id + count - start)
        made.append((_events(size, start), list(range(start, start + size))))
    return made


def _append(store: Store, total: int, writers: int, first_id: int) -> float:
    """Events per second appended by ``writers`` threads in batches of BATCH (the events
    are made before the clock starts: it times the store, not the bench's generator)."""
    per_writer = total // writers
    work = [_batches(first_id + w * per_writer, per_writer) for w in range(writers)]

    def write(batches: list[tuple[list[NewEvent], list[int]]]) -> None:
        for events, ids in batches:
            store.log.append(events, ids)

    threads = [threading.Thread(target=write, args=(batches,)) for batches in work]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return per_writer * writers / (time.perf_counter() - started)


def _read_log(store: Store) -> float:
    started, seq, read = time.perf_counter(), 0, 0
    while entries := store.log.read(seq, 1000):
        seq, read = entries[-1].seq, read + len(entries)
    return read / (time.perf_counter() - started)


def _pages(store: Store, samples: int = 200) -> float:
    """Median milliseconds of a first page of 100 for one organisation and endpoint."""
    times = []
    for n in range(samples):
        event = _pool()[n * 7919 % POOL]
        endpoint = event.nested("endpoint")["id"]
        flt = EventFilter(organisation_ids=(event.organisation_id,), endpoint_ids=(endpoint,))
        started = time.perf_counter()
        store.log.query(EventQuery(flt))
        times.append((time.perf_counter() - started) * 1000)
    return sorted(times)[len(times) // 2]


def _bytes_per_event(url: str, events: int) -> float:
    """Bytes on disk per event: every table and index (SQLite: the file's used pages)."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            used = conn.execute(
                "SELECT (page_count - freelist_count) * page_size "
                "FROM pragma_page_count, pragma_freelist_count, pragma_page_size"
            ).fetchone()[0]
    else:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM events")  # as autovacuum would: the visibility map, no bloat
            row = conn.execute(
                "SELECT SUM(pg_total_relation_size(c.oid)) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind = 'r'"
            ).fetchone()
            used = int(row[0]) if row else 0
    return float(used) / events


def measure(url: str, events: int) -> dict[str, float]:
    store = open_store(url, sqlite_synchronous="FULL")
    try:
        one = _append(store, events // 2, 1, FIRST_ID)
        four = _append(store, events // 2, 4, FIRST_ID + events // 2)
        if url.startswith("postgresql"):  # as autovacuum would, before reads
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("ANALYZE events")
        return {
            "append_1_writer_events_per_s": round(one),
            "append_4_writers_events_per_s": round(four),
            "read_log_events_per_s": round(_read_log(store)),
            "first_page_median_ms": round(_pages(store), 2),
            "bytes_per_event": round(_bytes_per_event(url, events)),
        }
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--only", choices=("sqlite", "postgres"), help="one backend alone")
    args = parser.parse_args()
    results: dict[str, Any] = {"events": args.events, "batch": BATCH}
    if args.only != "postgres":
        with tempfile.TemporaryDirectory() as folder:
            results["sqlite"] = measure(f"sqlite:///{folder}/bench.db", args.events)
    if args.only != "sqlite":
        reason = postgres.unavailable_reason()
        if reason is None:
            with postgres.throwaway_database() as url:
                results["postgres"] = measure(url, args.events)
        else:
            results["postgres"] = reason
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())  # noqa: T201


if __name__ == "__main__":
    main()
