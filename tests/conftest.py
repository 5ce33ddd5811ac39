"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from herald.store import open_store
from tests.support import postgres
from tests.support.server import HeraldServer, start_server

SHARED_REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A migrated PostgreSQL database for this test session to copy (skips without a server)."""
    reason = postgres.unavailable_reason()
    if reason:
        pytest.skip(reason)
    name = postgres.create_database()
    try:
        open_store(postgres.database_url(name)).close()
        yield name
    finally:
        postgres.drop_database(name)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each test that needs a database runs once per backend: ``sqlite``, ``postgres``."""
    name: str = request.param
    return name


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated-or-empty database of the test's backend."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'herald' / 'herald.db'}"
        return
    template: str = request.getfixturevalue("postgres_template")
    with postgres.throwaway_database(template) as url:
        yield url


@pytest.fixture(scope="module", params=BACKENDS)
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database shared by one module's tests, once per backend (for module-scoped servers)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'herald.db'}"
        return
    template: str = request.getfixturevalue("postgres_template")
    with postgres.throwaway_database(template) as url:
        yield url


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[HeraldServer]:
    """A real ``herald serve`` on loopback with a fresh database, once per backend."""
    workdir = tmp_path / "herald"
    herald = start_server(workdir, database_url=database_url)
    try:
        yield herald
    finally:
        herald.stop()
