"""Ingest at size (issue 32): what an insert costs in the query store of N events against an
empty store, in the same run, batch by batch alternately so that all see the same machine:
Herald's ``store.log.append`` into a copy of the query store and into an empty store, and raw
``executemany`` of the same rows into the copy's events table (Herald's schema) and into a
plain table of the same rows indexed only on (organisation, ts) and (organisation,
endpoint, ts).
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

from bench.common import Mode, Result, rate
from bench.events import new_events
from bench.ingest import (
    BATCH,
    NAMES,
    _fresh_store,
    _raw_connection,
    _recent_documents,
    _row,
)
from bench.querystore import QueryStore
from herald.catalog import load_catalog
from herald.ids import IdGenerator
from herald.store.sql import EVENT_COLUMNS
from herald.store.sqlite import SQLiteStore
from herald.timefmt import now_ms

PLAIN = "plain_events"
_PLAIN_INSERT = (
    f"INSERT INTO {PLAIN} ({', '.join(EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
)
_EVENTS_INSERT = _PLAIN_INSERT.replace(PLAIN, "events", 1)


def _with_plain_table(path: Path) -> None:
    """The store's events copied into a table indexed on (organisation, ts) and
    (organisation, endpoint, ts) alone, in the same file."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA cache_size = -500000")
        conn.execute(f"CREATE TABLE {PLAIN} AS SELECT * FROM events")
        for name, columns in (("org_ts", "ts"), ("org_endpoint_ts", "endpoint_id, ts")):
            conn.execute(f"CREATE INDEX {PLAIN}_{name} ON {PLAIN} (organisation_id, {columns}, id)")
    finally:
        conn.close()


def _timed(conn: sqlite3.Connection, sql: str, rows: list[tuple[object, ...]]) -> float:
    began = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(sql, rows)
    conn.execute("COMMIT")
    return time.perf_counter() - began


def ingest_at_size(mode: Mode, store: QueryStore, workdir: Path) -> Result:
    """events/s of each of the four, and the two ratios issue 32 sets targets for."""
    big = workdir / "at-size.db"
    began = time.perf_counter()
    shutil.copyfile(store.path, big)  # the query store itself stays as built
    _with_plain_table(big)
    prepared_s = time.perf_counter() - began
    count = (20 if mode.quick else 50) * BATCH
    catalog = load_catalog()
    herald_ids, empty_ids, raw_ids = IdGenerator(11), IdGenerator(12), IdGenerator(13)
    at_size = SQLiteStore(f"sqlite:///{big}")
    empty = _fresh_store(workdir / "empty.db")
    raw = _raw_connection(big)
    seconds = {"at_size": 0.0, "empty": 0.0, "raw_schema": 0.0, "raw_plain": 0.0}
    try:
        for start in range(0, count, BATCH):
            part = range(start, start + BATCH)
            events = new_events(_recent_documents(count, None, part), catalog, now_ms(), NAMES)
            for name, target, ids in (
                ("at_size", at_size, herald_ids),
                ("empty", empty, empty_ids),
            ):
                batch_ids = ids.next_ids(len(events))
                clock = time.perf_counter()
                target.log.append(events, batch_ids)
                seconds[name] += time.perf_counter() - clock
            rows = [_row(e, i) for e, i in zip(events, raw_ids.next_ids(len(events)), strict=True)]
            seconds["raw_schema"] += _timed(raw, _EVENTS_INSERT, rows)
            seconds["raw_plain"] += _timed(raw, _PLAIN_INSERT, rows)
    finally:
        raw.close()
        at_size.close()
        empty.close()
        big.unlink()
    rates = {name: rate(count, spent) for name, spent in seconds.items()}
    return {
        "store_events": store.events,
        "events": count,
        "batch": BATCH,
        "prepare_s": round(prepared_s, 1),
        "herald_at_size_events_per_s": rates["at_size"],
        "herald_empty_events_per_s": rates["empty"],
        "at_size_vs_empty": round(rates["at_size"] / rates["empty"], 3),
        "raw_schema_events_per_s": rates["raw_schema"],
        "raw_plain_events_per_s": rates["raw_plain"],
        "raw_schema_vs_plain": round(rates["raw_schema"] / rates["raw_plain"], 3),
    }
