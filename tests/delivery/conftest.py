"""Fixtures of the delivery tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from herald.store import Store, open_store


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A fresh store of the test's backend holding organisation 2, "Acme"."""
    opened = open_store(database_url, sqlite_synchronous="NORMAL")
    opened.organisations.create("Acme", 2)
    try:
        yield opened
    finally:
        opened.close()
