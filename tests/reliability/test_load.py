"""Load and observability: concurrent writers and readers on SQLite, no 5xx, metrics move."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.delivery.receiver import DELIVERY_ENV, receiving
from tests.reliability.conftest import make_tenant
from tests.reliability.figures import Figures
from tests.reliability.traffic import Writers
from tests.support.server import start_server

SECONDS = float(os.environ.get("HERALD_SOAK_SECONDS", "8"))


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_concurrent_writers_and_readers_see_no_5xx(
    database_url: str, backend: str, tmp_path: Path, figures: Figures
) -> None:
    """Once per backend: SQLite, and PostgreSQL where a server is available."""
    server = start_server(tmp_path / "herald", database_url=database_url)
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
        rss_start = _rss_kib(server.process.pid)
        readers = [threading.Thread(target=read, daemon=True) for _ in range(3)]
        for thread in readers:
            thread.start()
        threads = writers.start(3)
        time.sleep(SECONDS)
        writers.stop.set()
        stop.set()
        for thread in [*threads, *readers]:
            thread.join(30)
        rss_end = _rss_kib(server.process.pid)

        statuses = writers.statuses + reads
        figures.add(f"load.{backend}.requests", sum(statuses.values()))
        figures.add(f"load.{backend}.events_ingested", 20 * writers.statuses[201])
        figures.add(f"load.{backend}.5xx", sum(n for s, n in statuses.items() if s >= 500))
        figures.note(f"load.{backend}.rss_kib", f"{rss_start} -> {rss_end} over {SECONDS:g} s")
        assert set(statuses) <= {200, 201}, statuses

        metrics = httpx.get(f"{server.url}/metrics", timeout=10)
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        text = metrics.text
        assert 'herald_events_ingested_total{provider="api"}' in text
        assert "herald_query_seconds_count" in text
        assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
        assert httpx.get(f"{server.url}/ready").json() == {"status": "ready"}
    finally:
        server.stop()


def test_metrics_count_delivery_and_refusals(tmp_path: Path) -> None:
    server = start_server(tmp_path / "herald", env=DELIVERY_ENV)
    try:
        tenant = make_tenant(server, "Metered Co")
        with receiving() as receiver, server.client(tenant.token) as client:
            handler = client.post("/event_handler", json={"name": "m", "url": receiver.url})
            assert handler.status_code == 201
            client.post("/event", json={"event_type": {"id": 10001}})
            receiver.wait_for(lambda: len(receiver.delivered()) >= 1)
        with server.client("hrd_forged") as client:
            assert client.get("/event").status_code == 401
        text = httpx.get(f"{server.url}/metrics", timeout=10).text
        assert 'herald_deliveries_total{outcome="delivered"}' in text
        assert f'herald_delivery_lag_seconds{{handler="{handler.json()["id"]}"}}' in text
        assert 'herald_delivery_handlers{mode="serve"} 1.0' in text  # where delivery runs
        assert "herald_auth_failures_total 1.0" in text
    finally:
        server.stop()
