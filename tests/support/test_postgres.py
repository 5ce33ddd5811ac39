"""The tests' throwaway PostgreSQL databases: each copy is dropped, off the test's clock."""

from __future__ import annotations

import psycopg

from tests.support import postgres


def exists(name: str) -> bool:
    with psycopg.connect(postgres.database_url("postgres")) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return found is not None


def test_copies_are_dropped_by_the_time_the_drops_are_waited_for(postgres_template: str) -> None:
    names = []
    for _ in range(3):
        with postgres.database_copy(postgres_template) as url:
            names.append(url.rsplit("/", 1)[1])
            assert exists(names[-1])
    postgres.wait_for_drops()
    assert [exists(name) for name in names] == [False, False, False]
