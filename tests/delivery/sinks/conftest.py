"""Fixtures of the sink tests: Herald's app in process per backend and a tenant's API client;
a real ``herald serve`` per backend only for the tests that kill it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.delivery.receiver import start_delivery_in_process, start_delivery_server, tenant
from tests.support.herald import Herald
from tests.support.inproc import InProcessHerald
from tests.support.server import HeraldServer


@pytest.fixture
def herald(tmp_path: Path, database_url: str) -> Iterator[InProcessHerald]:
    running = start_delivery_in_process(tmp_path / "herald", database_url)  # once per backend
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def api(herald: InProcessHerald) -> Iterator[httpx.Client]:
    """A new tenant's client: it manages handlers, writes and reads events."""
    yield from _client(herald)


@pytest.fixture
def process(tmp_path: Path, database_url: str) -> Iterator[HeraldServer]:
    """``herald serve`` as a process of its own, once per backend: for the tests that kill it."""
    server = start_delivery_server(tmp_path / "herald", database_url)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def process_api(process: HeraldServer) -> Iterator[httpx.Client]:
    """A new tenant's client of ``process``."""
    yield from _client(process)


def _client(herald: Herald) -> Iterator[httpx.Client]:
    _, token = tenant(herald)
    with herald.client(token) as client:
        yield client
