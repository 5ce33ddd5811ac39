"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import HeraldServer, start_server

SHARED_REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[HeraldServer]:
    """A real ``herald serve`` on loopback with a fresh SQLite file."""
    herald = start_server(tmp_path / "herald")
    try:
        yield herald
    finally:
        herald.stop()
