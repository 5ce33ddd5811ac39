"""Throwaway PostgreSQL databases for the tests, on the server at 127.0.0.1:5432.

A test session migrates one template database; each test gets a copy of it (a file copy,
fast) and drops it afterwards, off the test's clock: a DROP DATABASE waits for a checkpoint
(seconds on a busy server), so copies are dropped by a thread of their own, those pending
together (they share a checkpoint), and the session waits for the last ones at its end.
Without a reachable server the PostgreSQL tests are skipped with the reason, never passed.
"""

from __future__ import annotations

import atexit
import os
import queue
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache

import psycopg
from psycopg import sql

SERVER_URL = os.environ.get("HERALD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


def database_url(name: str) -> str:
    return f"{SERVER_URL}/{name}"


@cache
def unavailable_reason() -> str | None:
    """Why the PostgreSQL tests cannot run here, or None if they can."""
    try:
        with psycopg.connect(database_url("postgres"), connect_timeout=3):
            return None
    except psycopg.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"PostgreSQL is not reachable at {SERVER_URL} ({first_line})"


def _admin(statement: sql.Composed) -> None:
    with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
        conn.execute(statement)


def create_database(template: str | None = None) -> str:
    """Create a database named ``herald_test_<random>`` (a copy of ``template``)."""
    name = f"herald_test_{secrets.token_hex(6)}"
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    _admin(statement)
    return name


def drop_database(name: str) -> None:
    _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def throwaway_database(template: str | None = None) -> Iterator[str]:
    """A new database's URL, dropped on exit."""
    name = create_database(template)
    try:
        yield database_url(name)
    finally:
        drop_database(name)


@contextmanager
def database_copy(template: str) -> Iterator[str]:
    """A new copy of ``template``: its URL, then dropped in the background (``drop_later``)."""
    name = create_database(template)
    try:
        yield database_url(name)
    finally:
        drop_later(name)


_PENDING: queue.Queue[str] = queue.Queue()
_FAILED: list[str] = []
_dropper: threading.Thread | None = None


def drop_later(name: str) -> None:
    """Drop database ``name`` soon, on the dropping thread; ``wait_for_drops`` waits for it."""
    global _dropper
    if _dropper is None:
        _dropper = threading.Thread(target=_drop_pending, name="drop-databases", daemon=True)
        _dropper.start()
    _PENDING.put(name)


def _drop_pending() -> None:
    while True:
        names = [_PENDING.get()]
        while not _PENDING.empty():
            names.append(_PENDING.get_nowait())
        with ThreadPoolExecutor(len(names)) as pool:
            for name, error in zip(names, pool.map(_drop, names), strict=True):
                if error:
                    _FAILED.append(f"{name}: {error}")
        for _ in names:
            _PENDING.task_done()


def _drop(name: str) -> str | None:
    try:
        drop_database(name)
    except psycopg.Error as exc:
        return str(exc).strip() or type(exc).__name__
    return None


@atexit.register
def wait_for_drops() -> None:
    """Wait until every database given to ``drop_later`` is dropped; raise naming those that
    could not be (each left on the server)."""
    _PENDING.join()
    if _FAILED:
        failed, _FAILED[:] = list(_FAILED), []
        raise RuntimeError("test databases not dropped: " + "; ".join(failed))
