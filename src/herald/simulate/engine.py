"""The simulated world: every device and account, stepped in time order.

``World(orgs, devices, seed).events(start_ms, end_ms)`` yields ``EventIn`` documents (and,
with ``usage=True``, gathers the devices' usage records for ``take_usage``). Each
actor draws from its own ``random.Random`` seeded from the world's seed and its name, so
the same seed gives the same history.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from typing import Any, Protocol

from herald.simulate.account import AccountLife
from herald.simulate.device import DeviceLife
from herald.simulate.fleet import Organisation, devices, organisations

NEW_DEVICE_SHARE = 0.1
"""Of a fresh fleet, the SIMs that start life during the history (issued, tested, activated)."""


class Actor(Protocol):
    next_ms: int | None

    def step(self, now: int) -> list[dict[str, Any]]: ...


class World:
    """M organisations with N devices between them."""

    def __init__(self, orgs: int, device_count: int, seed: int, *, usage: bool = False) -> None:
        if orgs < 1 or device_count < 0:
            raise ValueError("a world needs at least one organisation")
        self.seed = seed
        # with ``usage``, the devices' usage records gather here until taken (take_usage)
        self.usage: list[dict[str, Any]] | None = [] if usage else None
        self.organisations: list[Organisation] = organisations(orgs)
        self.devices = devices(device_count, self.organisations)

    def actors(self, start_ms: int, *, fresh: bool = True) -> list[Actor]:
        """Every device and account as it is at ``start_ms``.

        A ``fresh`` world has some SIMs still to be issued and announces its quota policies;
        otherwise (a world resumed, e.g. the demo after a restart) everything is running.
        """
        actors: list[Actor] = []
        for org in self.organisations:
            rng = random.Random(f"{self.seed}:account:{org.id}")
            actors.append(AccountLife(org, rng, start_ms, new=fresh))
        for device in self.devices:
            rng = random.Random(f"{self.seed}:device:{device.index}")
            new = fresh and rng.random() < NEW_DEVICE_SHARE
            actors.append(DeviceLife(device, rng, start_ms, new=new, usage=self.usage))
        return actors

    def take_usage(self) -> list[dict[str, Any]]:
        """The usage records of the events yielded so far and not yet taken (1NCE's shape)."""
        if self.usage is None:
            return []
        taken = self.usage[:]
        self.usage.clear()
        return taken

    def events(
        self, start_ms: int, end_ms: int | None = None, *, fresh: bool = True
    ) -> Iterator[dict[str, Any]]:
        """Events from ``start_ms`` until ``end_ms`` (forever if None), roughly in time order.

        Events of one actor are in order; one happening's events may run a few seconds
        past the next actor's, and past ``end_ms`` (by less than a minute).
        """
        actors = self.actors(start_ms, fresh=fresh)
        queue = [(a.next_ms, i) for i, a in enumerate(actors) if a.next_ms is not None]
        heapq.heapify(queue)
        while queue:
            at, index = heapq.heappop(queue)
            if end_ms is not None and at > end_ms:
                return
            actor = actors[index]
            yield from actor.step(at)
            if actor.next_ms is not None:
                heapq.heappush(queue, (actor.next_ms, index))
