"""A live stream of simulated events at a steady rate, stamped with the wall clock.

The world runs on from now; its events keep their order (so each device's story still
makes sense) and are sent at ``rate`` per second whatever the simulated clock says.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

import httpx

from herald.simulate.engine import World
from herald.simulate.usage import PROVIDER, restamp
from herald.timefmt import format_ms, now_ms

TICK_SECONDS = 0.5


def restamped(world: World, *, fresh: bool = False) -> Iterator[dict[str, Any]]:
    """The world's events from now on, each stamped with the moment it is taken."""
    for event in world.events(now_ms(), fresh=fresh):
        event["timestamp"] = format_ms(now_ms())
        yield event


def paced(
    events: Iterator[dict[str, Any]],
    rate: float,
    send: Callable[[list[dict[str, Any]]], None],
    *,
    limit: int | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Hand ``send`` batches so that about ``rate`` events a second go out; return how many."""
    started = clock()
    sent = 0
    while limit is None or sent < limit:
        due = int((clock() - started) * rate) + 1
        if limit is not None:
            due = min(due, limit)
        if due > sent:
            batch = list(islice(events, due - sent))
            if not batch:
                break
            send(batch)
            sent += len(batch)
        sleep(TICK_SECONDS if rate * TICK_SECONDS >= 1 else 1 / rate)
    return sent


class ApiSender:
    """Posts batches to ``POST /api/v1/event`` (usage records to ``/ingest/1nce``) with an
    internal token."""

    def __init__(self, url: str, token: str, timeout: float = 30) -> None:
        self._client = httpx.Client(
            base_url=url.rstrip("/") + "/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    def __call__(self, batch: list[dict[str, Any]]) -> None:
        for start in range(0, len(batch), 1000):
            response = self._client.post("/event", json=batch[start : start + 1000])
            if response.status_code >= 400:
                raise httpx.HTTPStatusError(
                    f"{response.status_code}: {response.text[:500]}",
                    request=response.request,
                    response=response,
                )

    def usage(self, records: list[dict[str, Any]]) -> None:
        """Post usage records to ``/ingest/1nce`` (per organisation), stamped now."""
        by_organisation: dict[int, list[dict[str, Any]]] = {}
        for record in records:
            by_organisation.setdefault(record["organisation"]["id"], []).append(record)
        for organisation, batch in by_organisation.items():
            for start in range(0, len(batch), 1000):
                stamped = [restamp(record, now_ms()) for record in batch[start : start + 1000]]
                response = self._client.post(
                    f"/ingest/{PROVIDER}", params={"organisation": organisation}, json=stamped
                )
                response.raise_for_status()

    def close(self) -> None:
        self._client.close()
