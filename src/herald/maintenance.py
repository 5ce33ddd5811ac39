"""The API process's upkeep, every ``purge_interval_seconds``: the retention purge
(``retention.purge``) and the store's maintenance (PostgreSQL creates the event partitions
of the days ahead; SQLite has nothing to prepare)."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from herald import retention
from herald.loops import run_forever
from herald.services import Services


def upkeep(services: Services) -> list[Coroutine[Any, Any, None]]:
    """The ``retention`` and ``maintenance`` loops, to run until cancelled."""
    loops, interval = services.loops, services.settings.purge_interval_seconds
    return [
        run_forever(loops, "retention", lambda: retention.purge(services), interval),
        run_forever(
            loops,
            "maintenance",
            lambda: services.run(services.store.maintenance.maintain),
            interval,
        ),
    ]
