"""Migration 0005 on SQLite rebuilds the handlers table (AUTOINCREMENT): nothing is lost."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from herald.handlers.types import HandlerSpec
from herald.store import open_store
from herald.store.migrator import migrations


def test_the_handler_rebuild_keeps_handlers_deliveries_and_replays(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "applied_ms INTEGER NOT NULL)"
        )
        for migration in migrations("sqlite"):
            if migration.version < 5:  # a database as the version before left it
                conn.executescript(migration.sql)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, 0)",
                    (migration.version, migration.name),
                )
        conn.executescript(
            "INSERT INTO organisations VALUES (1, 'A', 0);"
            "INSERT INTO handlers (id, organisation_id, name, type, url, format, filter, "
            "batch_max_events, batch_max_wait_ms, retention_ms, enabled, secret, cursor_seq, "
            "created_ms, updated_ms) VALUES "
            "(1, 1, 'one', 'webhook', 'http://x/', 'native', '{}', 1, 0, 1, 1, 's', 0, 0, 0),"
            "(2, 1, 'two', 'webhook', 'http://x/', 'native', '{}', 1, 0, 1, 1, 's', 0, 0, 0);"
            "INSERT INTO deliveries (handler_id, at_ms, kind, event_ids, outcome, latency_ms) "
            "VALUES (2, 1, 'live', '[1]', 'delivered', 3);"
            "INSERT INTO replays (handler_id, from_ms, until_ms, cursor_seq, end_seq, "
            "created_ms) VALUES (2, 0, 1, 0, 5, 0);"
        )
        conn.commit()
    store = open_store(f"sqlite:///{path}")
    try:
        assert store.maintenance.schema_status().current >= 5
        assert [h.spec.name for h in store.handlers.all()] == ["one", "two"]
        assert [d.event_ids for d in store.handlers.deliveries(2)] == [(1,)]
        assert [r.end_seq for r in store.handlers.pending_replays(2)] == [5]
        with contextlib.closing(sqlite3.connect(path)) as conn:  # 0017: their handler's
            carried = conn.execute(
                "SELECT organisation_id FROM deliveries "
                "UNION ALL SELECT organisation_id FROM replays"
            ).fetchall()
        assert carried == [(1,), (1,)]
        store.handlers.delete(2, None)  # the newest: its id is never given again
        created = store.handlers.create(1, HandlerSpec(name="three", url="http://x/"), "s")
        assert created.id > 2  # a random slot of its millisecond (issue 28), not a counter
        assert [h.id for h in store.handlers.all()] == [1, created.id]  # the old keeps its id
        assert (
            store.handlers.deliveries(created.id) == []
            and store.handlers.pending_replays(created.id) == []
        )
    finally:
        store.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("PRAGMA foreign_keys").fetchone() == (0,)  # a new connection's
