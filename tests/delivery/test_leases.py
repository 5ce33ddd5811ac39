"""Two workers' leases over one store (each backend): claimed, claimable, held, released."""

from __future__ import annotations

import asyncio
from typing import Any

from herald.delivery.leases import Leases
from herald.delivery.signing import new_secret
from herald.handlers.types import HandlerSpec
from herald.store import Store


async def run(work: Any, *args: Any) -> Any:
    return work(*args)


def test_one_owner_holds_a_handler_until_it_releases_it(store: Store) -> None:
    spec = HandlerSpec(name="h", url="http://127.0.0.1:9/")
    handler = store.handlers.create(2, spec, new_secret())
    first, second = Leases(store, run, "serve", 30), Leases(store, run, "worker", 30)

    async def scenario() -> None:
        assert not first.held()  # nothing claimed yet
        assert [h.id for h in await first.claim()] == [handler.id]
        assert first.held()
        assert await first.claimable() == [handler.id]  # its own
        assert await second.claimable() == []
        assert await second.claim() == []
        await first.release()
        assert await second.claimable() == [handler.id]
        [claimed] = await second.claim()
        assert claimed.owner == second.owner and second.owner.startswith("worker:")

    asyncio.run(scenario())
