"""Fixtures of the sink tests: a ``herald serve`` per backend and a tenant's API client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.delivery.receiver import start_delivery_server, tenant
from tests.support.server import HeraldServer


@pytest.fixture
def herald(tmp_path: Path, database_url: str) -> Iterator[HeraldServer]:
    server = start_delivery_server(tmp_path / "herald", database_url)  # once per backend
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def api(herald: HeraldServer) -> Iterator[httpx.Client]:
    """A new tenant's client: it manages handlers, writes and reads events."""
    _, token = tenant(herald)
    with herald.client(token) as client:
        yield client
