"""The demo inside ``herald serve``: a small fleet with a day of history and a gentle stream.

It seeds only a database that has never held an event, and marks it; on later starts a
marked database gets the live stream again. A database with real events never gets a demo.
"""

from __future__ import annotations

import logging
from itertools import islice
from typing import TYPE_CHECKING

from herald.loops import DONE, run_forever
from herald.model import OrganisationRef
from herald.simulate.backfill import backfill, ensure_organisations, to_new_events
from herald.simulate.engine import World
from herald.simulate.fleet import Organisation
from herald.simulate.live import restamped
from herald.simulate.usage import restamp, save_usage
from herald.timefmt import now_ms

if TYPE_CHECKING:  # the app imports this module: no import of herald.api at run time
    from herald.services import Services

log = logging.getLogger("herald.demo")
DEMO_MARK = "demo_seeded"
DEMO_ORGANISATIONS = 3
DEMO_SEED = 5
TICK_SECONDS = 1.0


def demo_name(name: str) -> str:
    """An organisation's name in the demo: marked as a demo one."""
    return name if "demo" in name.lower() else f"{name} (demo)"


def demo_world(devices: int, seed: int) -> World:
    """The demo's world: its organisations named as demo ones, so nobody takes them for real
    tenants in the console or the lists."""
    world = World(DEMO_ORGANISATIONS, devices, seed, usage=True)
    world.organisations = [Organisation(o.id, demo_name(o.name)) for o in world.organisations]
    return world


async def run_demo(services: Services) -> None:
    """Seed the demo if the database is new, then stream events forever (until cancelled).

    A background loop (``herald.loops``): a failure is logged, shown in /ready and tried
    again after a backoff, never the end of the demo or of the server.
    """
    await run_forever(services.loops, "demo", _Demo(services).tick, TICK_SECONDS)


async def _seed_once(services: Services) -> bool:
    """Seed a new database; False if the database holds real events (no demo at all)."""
    store, settings = services.store, services.settings
    if await services.run(store.meta.get, DEMO_MARK) is None:
        if await services.run(store.log.last_seq) > 0:
            return False
        await services.run(store.meta.set_if_absent, DEMO_MARK, str(now_ms()))
        world = demo_world(settings.demo_devices, DEMO_SEED)
        written = await services.run(_seed, services, world)
        log.info(
            "demo: seeded %d events of %d devices in %d demo organisations "
            "(start with --no-demo or HERALD_DEMO=false to run without it)",
            written,
            len(world.devices),
            len(world.organisations),
        )
    return True


class _Demo:
    """Seeds once, then streams a few events a second of a running world."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.seeded = False
        # The stream resumes a running world: no SIM is issued twice.
        self.world = demo_world(services.settings.demo_devices, now_ms())
        self.events = restamped(self.world)
        self.organisations: dict[int, OrganisationRef] | None = None
        self.owed = 0.0

    async def tick(self) -> object:
        services = self.services
        if not self.seeded:
            if not await _seed_once(services):
                return DONE
            self.seeded = True
        if self.organisations is None:
            self.organisations = await services.run(
                ensure_organisations, services.store, self.world
            )
        self.owed += services.settings.demo_rate * TICK_SECONDS
        count = int(self.owed)
        if count:
            batch = to_new_events(
                islice(self.events, count), self.organisations, services.writer, now_ms()
            )
            self.owed -= count
            await services.run(services.writer.append, batch)
            now = now_ms()
            usage = [restamp(record, now) for record in self.world.take_usage()]
            await services.run(save_usage, services.store, services.ids, usage, now)
        return None


def _seed(services: Services, world: World) -> int:
    return backfill(services.store, world, 1.0, show_progress=False, ids=services.ids)
