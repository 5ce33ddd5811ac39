"""SQLite reader connections are pooled, not kept per thread."""

from __future__ import annotations

import threading
from pathlib import Path

from herald.store.sqlite import SQLiteStore


def test_threads_that_come_and_go_reuse_reader_connections(tmp_path: Path) -> None:
    # The API runs store calls on a pool of worker threads that are pruned when idle and
    # started again under load; a connection (and its page cache) per thread ever seen
    # grew the server's memory for as long as it ran.
    store = SQLiteStore(f"sqlite:///{tmp_path / 'herald.db'}")
    store.migrate()
    try:
        for _ in range(50):
            thread = threading.Thread(target=store.last_seq)
            thread.start()
            thread.join()
        assert len(store._connections) <= 2  # the writer and one reader
    finally:
        store.close()
