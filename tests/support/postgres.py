"""Throwaway PostgreSQL databases for the tests, on the server at 127.0.0.1:5432.

A test session migrates one template database; each test gets a copy of it (a file copy,
fast) and drops it afterwards. Without a reachable server the PostgreSQL tests are skipped
with the reason, never passed.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
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
