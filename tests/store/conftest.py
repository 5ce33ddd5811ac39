"""The contract suite runs once per backend: ``store`` is a fresh, migrated store of each."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from herald.model import NewEvent
from herald.store import Store, open_store
from herald.timefmt import format_ms, now_ms

EventFactory = Callable[..., NewEvent]


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = open_store(database_url, sqlite_synchronous="NORMAL")
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def make_event() -> EventFactory:
    """Build a valid NewEvent: ``make_event(org, ts_ms, type_id=3, external_id=None, **nested)``."""

    def make(
        organisation_id: int,
        timestamp_ms: int | None = None,
        type_id: int = 3,
        external_id: str | None = None,
        description: str = "PDP Context accepted",
        provider: str = "api",
        **nested: Any,
    ) -> NewEvent:
        ts = now_ms() if timestamp_ms is None else timestamp_ms
        record: dict[str, Any] = {
            "id": None,
            "timestamp": format_ms(ts),
            "event_type": {"id": type_id, "description": "t"},
            "organisation": {"id": organisation_id, "name": "org"},
            "alert": False,
            "description": description,
            **nested,
            "provider": provider,
            "external_id": external_id,
        }
        return NewEvent(
            organisation_id=organisation_id,
            timestamp_ms=ts,
            received_ms=now_ms(),
            type_id=type_id,
            severity=0,
            source=0,
            alert=False,
            criticality=5,
            provider=provider,
            external_id=external_id,
            record=record,
        )

    return make


@pytest.fixture
def ids() -> Callable[[int], list[int]]:
    """Distinct, increasing event ids."""
    counter = itertools.count(1_000_000)
    return lambda n: [next(counter) for _ in range(n)]
