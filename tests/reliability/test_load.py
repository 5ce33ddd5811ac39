"""Load and observability: concurrent writers and readers on SQLite, no 5xx, metrics move."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.delivery.receiver import DELIVERY_ENV, receiving
from tests.reliability.conftest import make_tenant
from tests.reliability.figures import Figures
from tests.reliability.traffic import Writers
from tests.support.inproc import start_in_process
from tests.support.metrics import increase, scrape
from tests.support.server import start_server

SECONDS = float(os.environ.get("HERALD_SOAK_SECONDS", "8"))
# Memory: after a warm-up (the first half: page caches and pools fill), the server's RSS
# must not trend up by more than this over the second half, and never pass the ceiling.
FLAT_AFTER_SECONDS = 60  # shorter runs are all warm-up: only the ceiling is checked
GROWTH_BOUND_MIB = 16
GROWTH_BOUND_FRACTION = 0.10
RSS_CEILING_MIB = 320


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class RssSampler(threading.Thread):
    """Samples a process's resident set size (``VmRSS``, KiB) every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.samples: list[int] = [_rss_kib(pid)]  # the first before the load
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            self.samples.append(_rss_kib(self.pid))

    def stop(self) -> list[int]:
        self.done.set()
        self.join(5)
        self.samples.append(_rss_kib(self.pid))
        return self.samples


def trend_kib(samples: list[int]) -> float:
    """Growth over ``samples`` by their least-squares line: robust to allocator sawtooth."""
    n = len(samples)
    mean_x, mean_y = (n - 1) / 2, sum(samples) / n
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(samples))
    variance = sum((x - mean_x) ** 2 for x in range(n))
    return covariance / variance * (n - 1)


def test_trend_ignores_sawtooth_and_sees_growth() -> None:
    sawtooth = [100_000 + (20_000 if i % 2 else 0) for i in range(100)]
    assert abs(trend_kib(sawtooth)) < 1_000
    assert trend_kib([100_000 + 500 * i for i in range(100)]) == pytest.approx(49_500)


def test_concurrent_writers_and_readers_see_no_5xx(
    database_url: str, backend: str, tmp_path: Path, figures: Figures
) -> None:
    """Once per backend: SQLite, and PostgreSQL where a server is available."""
    unbudgeted = {"HERALD_EVENT_BUDGET_PER_SECOND": "0"}  # the load is one tenant's
    server = start_server(tmp_path / "herald", env=unbudgeted, database_url=database_url)
    try:
        tenant = make_tenant(server, "Load Co", "event:create", "event:read")
        writers = Writers(server, tenant.token, size=20)
        reads: Counter[int] = Counter()
        stop = threading.Event()

        def read() -> None:
            with server.client(tenant.token) as client:
                while not stop.is_set():
                    for params in ({"per_page": 50}, {"q": "type:10001", "sort": "-id"}):
                        reads[client.get("/event", params=params).status_code] += 1

        assert server.process is not None
        rss = RssSampler(server.process.pid)
        rss.start()
        readers = [threading.Thread(target=read, daemon=True) for _ in range(3)]
        for thread in readers:
            thread.start()
        threads = writers.start(3)
        time.sleep(SECONDS)
        writers.stop.set()
        stop.set()
        for thread in [*threads, *readers]:
            thread.join(30)
        samples = rss.stop()

        statuses = writers.statuses + reads
        figures.add(f"load.{backend}.requests", sum(statuses.values()))
        figures.add(f"load.{backend}.events_ingested", 20 * writers.statuses[201])
        figures.add(f"load.{backend}.5xx", sum(n for s, n in statuses.items() if s >= 500))
        second_half = samples[len(samples) // 2 :]
        growth = trend_kib(second_half) / 1024
        bound = max(
            GROWTH_BOUND_MIB, GROWTH_BOUND_FRACTION * sum(second_half) / len(second_half) / 1024
        )
        mib = [round(kib / 1024) for kib in samples]
        tenths = [mib[round(i * (len(mib) - 1) / 10)] for i in range(11)]
        figures.note(
            f"load.{backend}.rss_mib",
            f"{mib[0]} -> {mib[-1]} over {SECONDS:g} s, peak {max(mib)}; "
            f"second-half trend {growth:+.1f} (bound {bound:.0f}); "
            f"each tenth: {', '.join(map(str, tenths))} ({len(mib)} samples)",
        )
        assert set(statuses) <= {200, 201}, statuses
        assert max(mib) < RSS_CEILING_MIB, mib
        if SECONDS >= FLAT_AFTER_SECONDS:
            assert growth < bound, f"RSS grew {growth:.1f} MiB over the second half: {mib}"

        metrics = httpx.get(
            f"{server.url}/metrics",
            headers={"Authorization": f"Bearer {server.admin_token}"},
            timeout=10,
        )
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        text = metrics.text
        assert 'herald_events_ingested_total{provider="api"}' in text
        assert "herald_query_seconds_count" in text
        assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
        assert httpx.get(f"{server.url}/ready").json()["status"] == "ready"
    finally:
        server.stop()


def test_metrics_count_delivery_and_refusals(tmp_path: Path) -> None:
    server = start_in_process(tmp_path / "herald", env=DELIVERY_ENV)
    try:
        before = scrape(server)
        tenant = make_tenant(server, "Metered Co")
        with receiving() as receiver, server.client(tenant.token) as client:
            handler = client.post("/event_handler", json={"name": "m", "url": receiver.url})
            assert handler.status_code == 201
            client.post("/event", json={"event_type": {"id": 10001}})
            receiver.wait_for(lambda: len(receiver.delivered()) >= 1)
        with server.client("hrd_forged") as client:
            assert client.get("/event").status_code == 401
        text = httpx.get(
            f"{server.url}/metrics",
            headers={"Authorization": f"Bearer {server.admin_token}"},
            timeout=10,
        ).text
        assert 'herald_deliveries_total{outcome="delivered"}' in text
        assert f'herald_delivery_lag_seconds{{handler="{handler.json()["id"]}"}}' in text
        assert 'herald_delivery_handlers{mode="serve"} 1.0' in text  # where delivery runs
        assert increase(server, before, "herald_auth_failures_total") == 1
    finally:
        server.stop()
