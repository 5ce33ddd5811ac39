"""``herald worker``: delivery in a process of its own, beside ``herald serve``."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from herald.catalog import load_catalog
from herald.cli.common import DatabaseOption, console, fail, settings_for, store_for
from herald.delivery.worker import DeliveryWorker
from herald.ids import IdGenerator
from herald.store import StoreError, lease_node_id


def worker(database: DatabaseOption = None) -> None:
    """Deliver events to event handlers (run serve with HERALD_DELIVERY_ENABLED=false)."""
    settings = settings_for(database)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(message)s")
    store = store_for(database)
    try:
        node_id = lease_node_id(store, settings.node_id)
    except StoreError as exc:
        store.close()
        fail(f"cannot lease a node id: {exc}")
    delivery = DeliveryWorker(store, settings, load_catalog(), IdGenerator(node_id), mode="worker")
    console.print(f"Herald delivery worker {delivery.owner} on {settings.database_url}")

    async def main() -> None:
        try:
            await delivery.run()
        finally:
            await delivery.aclose()

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(main())
    finally:
        store.close()
