"""Fixtures of the reliability suite: the run's figures, servers and tenants."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.reliability.figures import Figures, run_kind
from tests.support.server import HeraldServer, start_server


@pytest.fixture(scope="session")
def figures() -> Iterator[Figures]:
    """This process's counters, written to the run's ignored directory at the session's end
    (``tests/reliability/figures.py``: merged there with the other workers')."""
    run = Figures(run_kind())
    yield run
    run.write()


@dataclass
class Tenant:
    organisation_id: int
    token: str


ALL = ("event:read", "event:create", "handler:read", "handler:manage", "rule:read", "rule:manage")


@pytest.fixture
def live(tmp_path: Path) -> Iterator[HeraldServer]:
    """A real ``herald serve`` on SQLite that may deliver to loopback receivers."""
    server = start_server(
        tmp_path / "herald",
        env={"HERALD_ALLOW_PRIVATE_TARGETS": "true", "HERALD_DELIVERY_POLL_SECONDS": "0.05"},
    )
    try:
        yield server
    finally:
        server.stop()


def make_tenant(server: HeraldServer, name: str, *permissions: str) -> Tenant:
    organisation = server.create_org(name)
    return Tenant(organisation, server.create_token(organisation, *(permissions or ALL)))
