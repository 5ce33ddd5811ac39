"""SQLite reader connections are pooled, not kept per thread, and the pool shrinks after bursts."""

from __future__ import annotations

import threading
from pathlib import Path

from herald.store.sqlite import SQLiteStore


def test_threads_that_come_and_go_reuse_reader_connections(tmp_path: Path) -> None:
    # The API runs store calls on a pool of worker threads that are pruned when idle and
    # started again under load; a connection (and its page cache) per thread ever seen
    # grew the server's memory for as long as it ran.
    store = SQLiteStore(f"sqlite:///{tmp_path / 'herald.db'}")
    store.maintenance.migrate()
    try:
        for _ in range(50):
            thread = threading.Thread(target=store.log.last_seq)
            thread.start()
            thread.join()
        assert len(store._connections) <= 2  # the writer and one reader
    finally:
        store.close()


def test_a_burst_of_concurrent_reads_leaves_a_bounded_pool(tmp_path: Path) -> None:
    # Every reader keeps a page cache of up to 16 MB. The pool opened one reader per
    # concurrent read and kept them all: one burst of 32 concurrent queries (the API's
    # thread pool allows 40) held 33 connections and their caches for the server's life.
    store = SQLiteStore(f"sqlite:///{tmp_path / 'herald.db'}")
    store.maintenance.migrate()
    barrier = threading.Barrier(32)
    try:
        threads = [
            threading.Thread(target=store.read, args=(lambda _: barrier.wait(10),))
            for _ in range(32)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not barrier.broken  # the 32 reads were open at once, on 32 readers
        assert len(store._connections) <= 9  # the writer and at most 8 idle readers
        assert store.log.last_seq() == 0  # a kept reader still works
    finally:
        store.close()
