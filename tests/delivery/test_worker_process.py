"""``herald worker`` as a real process: health and metrics on a port of its own, and a
SIGTERM that lets the request out finish and be recorded before it exits."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx

from herald.delivery.signing import new_secret
from herald.handlers.types import HandlerSpec
from herald.store import Store
from tests.delivery.receiver import receiving
from tests.delivery.test_drain import slow_receiver
from tests.delivery.test_worker import append, attempts
from tests.support.herald import HERALD
from tests.support.server import free_port
from tests.support.waiting import wait_until

SCRAPE_TOKEN = "scrape-me-please"


def start_worker(database_url: str, workdir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HERALD_ALLOW_PRIVATE_TARGETS": "true",
        "HERALD_DELIVERY_POLL_SECONDS": "0.05",
        "HERALD_SQLITE_SYNCHRONOUS": "NORMAL",
        "HERALD_METRICS_TOKEN": SCRAPE_TOKEN,
        "HERALD_AUDIT_EVENTS": "false",
    }
    workdir.mkdir(parents=True, exist_ok=True)
    with (workdir / "worker.log").open("ab") as log:
        return subprocess.Popen(
            [*HERALD, "worker", "--database", database_url, "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def test_worker_serves_health_and_metrics_and_drains_on_sigterm(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    arrived, answer = slow_receiver(1.0)
    worker = start_worker(database_url, tmp_path / "worker", port)
    try:

        def up() -> bool:
            assert worker.poll() is None, (tmp_path / "worker" / "worker.log").read_text()
            try:
                return httpx.get(f"{base}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 30)
        ready = httpx.get(f"{base}/ready").json()
        assert ready["status"] == "ready" and ready["loops"]["delivery"]["healthy"] is True
        assert httpx.get(f"{base}/metrics").status_code == 401
        forged = httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer nope"})
        assert forged.status_code == 401
        scraped = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"})
        assert scraped.status_code == 200 and "herald_delivery_handlers" in scraped.text

        with receiving(answer) as receiver:
            spec = HandlerSpec(name="h", url=receiver.url)
            handler = store.handlers.create(2, spec, new_secret())
            [event_id] = append(store, 1)
            assert arrived.wait(60), "the worker did not deliver"
            worker.send_signal(signal.SIGTERM)  # while the request is out
            # uvicorn shuts down, then raises the signal again: the exit a service manager expects
            assert worker.wait(60) in (0, -signal.SIGTERM)
        [attempt] = attempts(store, handler.id)
        assert (attempt.outcome, attempt.event_ids) == ("delivered", (event_id,))
        stored = store.handlers.get(handler.id)
        assert stored is not None and stored.owner is None  # leases given up on the way out
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(30)
