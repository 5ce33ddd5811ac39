"""Traffic for the reliability suite: batch writers that remember what was acknowledged."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

import httpx

from tests.support.server import HeraldServer

CUSTOM_TYPE = 10001


def batch(number: int, size: int) -> list[dict[str, object]]:
    """A batch whose every event names its batch, so half-written batches show."""
    return [
        {
            "id": f"b{number}-{index}",
            "event_type": {"id": CUSTOM_TYPE},
            "description": f"reliability batch {number}",
            "detail": {"batch": number, "index": index},
        }
        for index in range(size)
    ]


@dataclass
class Writers:
    """Threads posting batches until stopped or the server goes away."""

    server: HeraldServer
    token: str
    size: int = 50
    acknowledged: set[int] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)
    _next: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _number(self) -> int:
        with self._lock:
            self._next += 1
            return self._next

    def _run(self) -> None:
        with self.server.client(self.token) as client:
            while not self.stop.is_set():
                number = self._number()
                try:
                    response = client.post("/event", json=batch(number, self.size))
                except httpx.HTTPError:
                    return  # the server is gone: this batch is unacknowledged
                with self._lock:
                    self.statuses[response.status_code] += 1
                    if response.status_code == 201:
                        self.acknowledged.add(number)

    def start(self, count: int) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._run, daemon=True) for _ in range(count)]
        for thread in threads:
            thread.start()
        return threads


def stored_batches(server: HeraldServer, token: str) -> Counter[int]:
    """How many events of each batch the server holds, read with the keyset cursor."""
    counts: Counter[int] = Counter()
    base: dict[str, str | int] = {"type": CUSTOM_TYPE, "per_page": 1000}
    params = dict(base)
    with server.client(token) as client:
        while True:
            response = client.get("/event", params=params)
            assert response.status_code == 200, response.text
            for record in response.json():
                counts[int(record["detail"]["batch"])] += 1
            cursor = response.headers.get("X-Next-Cursor")
            if not cursor:
                return counts
            params = {**base, "cursor": cursor}
