"""``herald db status`` and ``herald db migrate`` on each backend."""

from __future__ import annotations

import subprocess
from pathlib import Path

from herald.store.migrator import migrations
from tests.support.herald import HERALD


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


def test_train_dictionary_adds_one_or_writes_it_to_a_file(
    database_url: str, tmp_path: Path
) -> None:
    assert herald("db", "train-dictionary", "--database", database_url).returncode == 1
    filled = herald(*("simulate", "--backfill", "1", "--limit", "400", "--database", database_url))
    assert filled.returncode == 0, filled.stderr
    added = herald("db", "train-dictionary", "--samples", "300", "--database", database_url)
    assert added.returncode == 0, added.stderr
    assert "dictionary 2 (" in added.stdout
    again = herald("db", "train-dictionary", "--samples", "300", "--database", database_url)
    assert "dictionary 3 (" in again.stdout
    output = tmp_path / "fleet.zdict"
    written = herald("db", "train-dictionary", "--output", str(output), "-d", database_url)
    assert written.returncode == 0, written.stderr
    assert output.read_bytes()[:4] == b"\x37\xa4\x30\xec"  # a zstd dictionary's magic number
    refused = herald("db", "train-dictionary", "--samples", "5", "-d", database_url)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr


def test_a_path_that_looks_like_markup_is_printed_as_it_is(tmp_path: Path) -> None:
    folder = tmp_path / "[bold]x[/]"
    folder.mkdir(parents=True)
    url = f"sqlite:///{folder / 'h.db'}"
    migrated = herald("db", "migrate", "--database", url)
    assert migrated.returncode == 0, migrated.stderr
    assert f"{url}: schema version" in migrated.stdout
    assert f"{url}: schema version" in herald("db", "status", "--database", url).stdout
