"""The leases of the handlers a delivery worker serves.

One owner name per worker holds them. They are taken and renewed together a few times per
lease period, and given up when the worker stops. While they cannot be renewed (the store
unreachable), they count as held only until the last renewal's period runs out: after
that another worker may hold a handler, so no step may start on it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import time

from herald.follower import Runner
from herald.handlers.types import Handler
from herald.store import Store, StoreError
from herald.timefmt import now_ms


def owner_name(mode: str) -> str:
    """A lease owner naming where delivery runs: ``serve`` or ``worker``, host and pid."""
    return f"{mode}:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Leases:
    """One worker's handler leases: claim (take or renew), claimable, release."""

    def __init__(self, store: Store, run: Runner, mode: str, lease_seconds: float) -> None:
        self.owner = owner_name(mode)
        self._store = store
        self._run = run
        self._lease_seconds = lease_seconds
        self._held_until = 0.0  # (monotonic) when the leases of the last claim run out

    async def claim(self) -> list[Handler]:
        """Take or renew the leases of every handler this worker may serve."""
        started = time.monotonic()
        lease_ms = int(self._lease_seconds * 1000)
        claimed = await self._run(self._store.handlers.claim, self.owner, now_ms(), lease_ms)
        self._held_until = started + self._lease_seconds
        return claimed

    def held(self) -> bool:
        """Whether the last claim's leases still hold (no other worker can have them)."""
        return time.monotonic() < self._held_until

    async def claimable(self) -> list[int]:
        """The handlers this worker may take up now (its own included)."""
        return await self._run(self._store.handlers.claimable_ids, self.owner, now_ms())

    async def release(self) -> None:
        """Give up every lease (if the store cannot be reached, they run out instead)."""
        with contextlib.suppress(StoreError):
            await self._run(self._store.handlers.release, self.owner)
