"""``herald db status`` and ``herald db migrate`` on each backend."""

from __future__ import annotations

import subprocess

from herald.store.migrator import migrations
from tests.support.server import HERALD


def herald(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HERALD, *args], capture_output=True, text=True, timeout=60)


def test_status_then_migrate_then_status(database_url: str, backend: str) -> None:
    latest = migrations(backend)[-1]
    before = herald("db", "status", "--database", database_url)
    assert before.returncode == 0, before.stderr
    if backend == "sqlite":  # the PostgreSQL test databases are copies of a migrated one
        assert "schema version 0" in before.stdout and latest.name in before.stdout
    migrated = herald("db", "migrate", "--database", database_url)
    assert migrated.returncode == 0, migrated.stderr
    assert f"schema version {latest.version}" in migrated.stdout
    after = herald("db", "status", "--database", database_url)
    assert "up to date" in after.stdout
    if backend == "postgres":
        assert "event partitions:" in after.stdout


def test_an_unreachable_database_is_a_clear_error_without_the_password() -> None:
    result = herald("db", "status", "--database", "postgresql://herald:s3cret@127.0.0.1:1/x")
    assert result.returncode == 1
    assert "cannot open database" in result.stderr and "s3cret" not in result.stderr
