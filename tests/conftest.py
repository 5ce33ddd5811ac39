"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from herald.store import open_store
from tests.reliability import figures
from tests.support import postgres
from tests.support.inproc import InProcessHerald, start_in_process
from tests.support.server import HeraldServer, start_server, stop_every_server

SHARED_REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


def pytest_configure(config: pytest.Config) -> None:
    figures.begin_run()  # on the controller, before its workers start: they share the run id


# The files that take longest, longest first (``--durations=0`` of a whole run, 2026-12-08:
# 50-130 s each on a loaded machine). ``--dist loadfile`` hands files to its workers in
# collection order, and a long file handed out last ends the run alone while the other
# workers wait: these go first, the rest (seconds each) fill in behind them.
LONGEST_FIRST = (
    "reliability/test_schemathesis_sqlite.py",
    "api/test_events.py",
    "reliability/test_security.py",
    "delivery/test_worker.py",
    "store/test_devices.py",
    "delivery/test_serve.py",
    "api/test_handlers.py",
    "reliability/test_input_table.py",
    "cli/test_admin.py",
    "reliability/test_rules.py",
    "reliability/test_schemathesis_postgres.py",
    "console/test_console.py",
    "delivery/test_hostile.py",
    "reliability/test_device_state.py",
    "api/test_retention.py",
    "api/test_devices.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Hand out ``LONGEST_FIRST``'s files first, in its order (stable: each file's tests
    keep theirs)."""
    rank = {Path(__file__).parent / name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path, len(rank)))


def pytest_sessionfinish(session: pytest.Session) -> None:
    stop_every_server()  # none of this process's ``herald serve`` outlives the session
    if not hasattr(session.config, "workerinput"):  # the controller, or a run without xdist
        figures.finish_run()


def pytest_report_header(config: pytest.Config) -> list[str]:
    if SHARED_REFERENCE.is_dir():
        return []
    return [f"provider reference documents MISSING at {SHARED_REFERENCE}: their tests skip"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Name, once and loudly, the tests skipped for want of the reference documents."""
    skipped = [
        report.nodeid
        for report in terminalreporter.stats.get("skipped", [])
        if isinstance(report.longrepr, tuple) and "reference" in str(report.longrepr[2])
    ]
    if skipped:
        terminalreporter.write_sep("!", f"{len(skipped)} tests SKIPPED: no reference documents")
        terminalreporter.write_line(
            f"They check Herald against the providers' documents, expected at {SHARED_REFERENCE}"
            " (a checkout of the shared reference beside this repository; CI has it):"
        )
        for nodeid in skipped:
            terminalreporter.write_line(f"  {nodeid}")


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
        try:
            postgres.wait_for_drops()  # its copies, dropped in the background
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
    with postgres.database_copy(template) as url:
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
    with postgres.database_copy(template) as url:
        yield url


@pytest.fixture
def herald(database_url: str, tmp_path: Path) -> Iterator[InProcessHerald]:
    """Herald's app in the test's process, on loopback with a fresh database, once per
    backend: what a test of the HTTP API needs (see tests/support/inproc.py)."""
    running = start_in_process(tmp_path / "herald", database_url=database_url)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[HeraldServer]:
    """A real ``herald serve`` process on loopback with a fresh database, once per backend:
    for tests whose subject is the process (signals, restarts, its log, the console)."""
    workdir = tmp_path / "herald"
    herald = start_server(workdir, database_url=database_url)
    try:
        yield herald
    finally:
        herald.stop()
