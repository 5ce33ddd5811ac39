"""The write-rate attack of issue 28 #2: one tenant posts batches of 1,000 events from 4
writers as fast as it can, ignoring ``Retry-After``; its event budget holds it to its rate
(429 with ``Retry-After`` for the rest) and another tenant's reads go on. On both backends,
over a real ``herald serve`` with the default budget; the neighbour's read latency idle and
under the attack is recorded (``make soak`` runs it for minutes), not asserted: speed is
the bench's (``bench/neighbour.py``)."""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections import Counter
from pathlib import Path

import orjson

from herald.config import Settings
from tests.reliability.conftest import make_tenant
from tests.reliability.figures import Figures
from tests.support.server import HeraldServer, start_server

SECONDS = float(os.environ.get("HERALD_SOAK_SECONDS", "8"))
WRITERS = 4
BATCH = 1000
DEFAULTS = Settings()
RATE, BURST = DEFAULTS.event_budget_per_second, DEFAULTS.event_budget_burst


def _batch() -> bytes:
    return orjson.dumps(
        [{"event_type": {"id": 10001}, "description": f"flood {n}"} for n in range(BATCH)]
    )


def _neighbour_reads(server: HeraldServer, token: str, seconds: float) -> tuple[list[float], int]:
    """The neighbour's newest-event reads for ``seconds``: milliseconds, and answers not 200."""
    samples: list[float] = []
    failed = 0
    until = time.monotonic() + seconds
    with server.client(token) as client:
        while time.monotonic() < until:
            began = time.perf_counter()
            response = client.get("/event", params={"per_page": 1})
            samples.append((time.perf_counter() - began) * 1000)
            failed += response.status_code != 200
            time.sleep(0.01)
    return samples, failed


def _p(samples: list[float], percent: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[percent - 1]


def test_a_tenant_flooding_writes_is_held_to_its_budget_and_a_neighbour_reads_on(
    database_url: str, backend: str, tmp_path: Path, figures: Figures
) -> None:
    server = start_server(tmp_path / "herald", database_url=database_url)
    try:
        attacker = make_tenant(server, "Flood Co", "event:create", "event:read")
        neighbour = make_tenant(server, "Neighbour Co", "event:create", "event:read")
        with server.client(neighbour.token) as client:
            seed = [{"event_type": {"id": 10001}, "description": "mine"}] * 10
            assert client.post("/event", json=seed).status_code == 201
        idle, idle_failed = _neighbour_reads(server, neighbour.token, SECONDS / 2)

        body = _batch()
        statuses: Counter[int] = Counter()
        missing_retry_after = 0
        stop = threading.Event()
        lock = threading.Lock()

        def flood() -> None:
            nonlocal missing_retry_after
            with server.client(attacker.token) as as_attacker:
                while not stop.is_set():
                    response = as_attacker.post("/event", content=body)  # never waits
                    with lock:
                        statuses[response.status_code] += 1
                        if response.status_code == 429 and "retry-after" not in response.headers:
                            missing_retry_after += 1

        began = time.monotonic()
        writers = [threading.Thread(target=flood, daemon=True) for _ in range(WRITERS)]
        for thread in writers:
            thread.start()
        attacked, attacked_failed = _neighbour_reads(server, neighbour.token, SECONDS)
        stop.set()
        for thread in writers:
            thread.join(60)
        elapsed = time.monotonic() - began

        stored = BATCH * statuses[201]
        key = f"write_rate.{backend}"
        figures.add(f"{key}.attack_requests", sum(statuses.values()))
        figures.add(f"{key}.attack_requests_refused_429", statuses[429])
        figures.add(f"{key}.attack_events_stored", stored)
        figures.add(f"{key}.neighbour_reads", len(idle) + len(attacked))
        figures.add(f"{key}.neighbour_reads_failed_5xx", idle_failed + attacked_failed)
        ratio = _p(attacked, 99) / _p(idle, 99)
        figures.note(
            f"{key}.neighbour_read_ms",
            f"idle p50 {_p(idle, 50):.1f} p99 {_p(idle, 99):.1f}; under attack p50 "
            f"{_p(attacked, 50):.1f} p99 {_p(attacked, 99):.1f} (p99 x{ratio:.1f}); the "
            f"attacker stored {stored / elapsed:.0f} events/s over {elapsed:.0f} s "
            f"(budget {RATE:g}/s, burst {BURST}), {statuses[429]} of "
            f"{sum(statuses.values())} requests refused",
        )
        assert set(statuses) <= {201, 429}, statuses
        assert statuses[429] > 0 and missing_retry_after == 0
        assert stored <= BURST + RATE * elapsed, (stored, elapsed)  # the budget held
        assert idle_failed == attacked_failed == 0
    finally:
        server.stop()
