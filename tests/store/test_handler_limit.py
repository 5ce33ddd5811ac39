"""The per-organisation handler limit is counted in the write's own transaction: handlers
created at once never go past it (both backends)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from herald.handlers.types import HandlerSpec
from herald.store import LimitReached, Store, open_store

LIMIT = 3


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = open_store(database_url, sqlite_synchronous="NORMAL")
    opened.organisations.create("Acme", 2)
    opened.organisations.create("Bolt", 3)
    try:
        yield opened
    finally:
        opened.close()


def create(store: Store, organisation_id: int, name: str) -> bool:
    try:
        spec = HandlerSpec(name=name, url="http://hooks.example/")
        store.handlers.create(organisation_id, spec, "secret", LIMIT)
    except LimitReached as refused:
        assert f"={LIMIT}" in str(refused)
        return False
    return True


@pytest.mark.parametrize("existing", [0, 2])
def test_concurrent_creations_stop_at_the_limit(store: Store, existing: int) -> None:
    for n in range(existing):
        assert create(store, 2, f"old{n}")
    with ThreadPoolExecutor(8) as pool:
        made = sum(pool.map(lambda n: create(store, 2, f"new{n}"), range(8)))
    assert made == LIMIT - existing
    assert len(store.handlers.all((2,))) == LIMIT
    assert create(store, 3, "another tenant")  # each organisation has its own


def test_deleting_one_makes_room(store: Store) -> None:
    for n in range(LIMIT):
        assert create(store, 2, f"h{n}")
    assert not create(store, 2, "one more")
    first = store.handlers.all((2,))[0]
    store.handlers.delete(first.id, (2,))
    assert create(store, 2, "one more")
