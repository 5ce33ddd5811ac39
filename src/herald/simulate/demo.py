"""The demo inside ``herald serve``: a small fleet with a day of history and a gentle stream.

It seeds only a database that has never held an event, and marks it; on later starts a
marked database gets the live stream again. A database with real events never gets a demo.
"""

from __future__ import annotations

import asyncio
import logging
from itertools import islice
from typing import TYPE_CHECKING

from herald.simulate.backfill import backfill, ensure_organisations, to_new_events
from herald.simulate.engine import World
from herald.simulate.live import restamped
from herald.timefmt import now_ms

if TYPE_CHECKING:  # the app imports this module: no import of herald.api at run time
    from herald.api.services import Services

log = logging.getLogger("herald.demo")
DEMO_MARK = "demo_seeded"
DEMO_ORGANISATIONS = 3
DEMO_SEED = 5
TICK_SECONDS = 1.0


async def run_demo(services: Services) -> None:
    """Seed the demo if the database is new, then stream events forever (until cancelled)."""
    try:
        await _demo(services)
    except Exception:  # the demo must never take the server down
        log.exception("demo: stopped")


async def _demo(services: Services) -> None:
    store, settings = services.store, services.settings
    if await services.run(store.get_meta, DEMO_MARK) is None:
        if await services.run(store.last_seq) > 0:
            return
        await services.run(store.set_meta_if_absent, DEMO_MARK, str(now_ms()))
        world = World(DEMO_ORGANISATIONS, settings.demo_devices, DEMO_SEED)
        written = await services.run(_seed, services, world)
        log.info(
            "demo: seeded %d events of %d devices (--no-demo turns it off)",
            written,
            len(world.devices),
        )
    # The stream resumes a running world: no SIM is issued twice.
    world = World(DEMO_ORGANISATIONS, settings.demo_devices, now_ms())
    organisations = await services.run(ensure_organisations, store, world)
    events = restamped(world)
    owed = 0.0
    while True:
        owed += settings.demo_rate * TICK_SECONDS
        count, owed = int(owed), owed - int(owed)
        if count:
            batch = to_new_events(islice(events, count), organisations, services.catalog, now_ms())
            await services.run(services.writer.append, batch)
        await asyncio.sleep(TICK_SECONDS)


def _seed(services: Services, world: World) -> int:
    return backfill(services.store, world, 1.0, show_progress=False)
