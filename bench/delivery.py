"""Delivery: events/s from the log to a local webhook receiver, batched and single, beside a
raw httpx loop posting the same bodies to the same receiver; and ingest-to-delivery latency.

Herald runs as it does in production with a separate worker: ``herald serve`` with delivery
off, and ``herald worker`` on the same database. The receiver is a process of its own.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
from tests.support.herald import HERALD
from tests.support.server import HeraldServer, free_port

from bench.common import (
    Mode,
    Result,
    herald_server,
    peak_rss_mb,
    percentiles,
    rate,
    sending_seconds,
)
from bench.events import document

BATCH = 100
LATENCY_RATE = 1000  # events/s
LATENCY_TICK_S = 0.05  # a request of 50 events every 50 ms
TIMEOUT_S = 600


@contextmanager
def receiver() -> Iterator[str]:
    """The receiver process; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.receiver", str(port)], stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != b"ready":
            raise RuntimeError("the receiver did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


@contextmanager
def worker(server: HeraldServer) -> Iterator[subprocess.Popen[bytes]]:
    """``herald worker`` on the server's database, its health port a free one (another
    worker on the machine may hold the default)."""
    with (server.workdir / "worker.log").open("ab") as log:
        process = subprocess.Popen(
            [*HERALD, "worker", "--database", server.database_url, "--port", str(free_port())],
            cwd=server.workdir,
            env=server.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(10)


def _stats(client: httpx.Client, url: str) -> dict[str, Any]:
    stats: dict[str, Any] = client.get(f"{url}/stats").json()
    return stats


def _wait_for(client: httpx.Client, url: str, events: int) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        stats = _stats(client, url)
        if stats["events"] >= events:
            return stats
        time.sleep(0.01)
    raise RuntimeError(f"the receiver got {stats['events']} of {events} events in time")


def _ingest(api: httpx.Client, docs: list[dict[str, Any]]) -> list[bytes]:
    """Store the documents (batches of 1000); the stored records' bytes, in order."""
    bodies: list[bytes] = []
    for start in range(0, len(docs), 1000):
        reply = api.post("/event", content=orjson.dumps(docs[start : start + 1000]))
        reply.raise_for_status()
        bodies.extend(orjson.dumps(record) for record in reply.json())
    return bodies


async def _raw_loop(url: str, bodies: list[bytes]) -> float:
    """Post every body, one after another, as a delivery loop would; seconds taken."""
    headers = {"Content-Type": "application/json"}
    async with httpx.AsyncClient(timeout=30) as client:
        await client.post(url, content=bodies[0], headers=headers)  # warm up the connection
        started = time.perf_counter()
        for body in bodies:
            reply = await client.post(url, content=body, headers=headers)
            reply.raise_for_status()
        return time.perf_counter() - started


def _throughput(
    server: HeraldServer, api: httpx.Client, sink: str, events: int, batch: int
) -> Result:
    docs = [document(i, organisation_id=1) for i in range(events)]
    spec = {
        "name": f"bench-{batch}",
        "url": f"{sink}/hook",
        "batch": {"max_events": batch, "max_wait_ms": 0},
        "enabled": False,
        "organisation_id": 1,
    }
    handler = api.post("/event_handler", json=spec)
    handler.raise_for_status()
    bodies = _ingest(api, docs)
    if batch > 1:
        bodies = [b"[" + b",".join(bodies[i : i + batch]) + b"]" for i in range(0, events, batch)]
    with httpx.Client(timeout=10) as control:
        raw_before = asyncio.run(_raw_loop(f"{sink}/hook", bodies))
        control.get(f"{sink}/reset")
        started = time.perf_counter()
        api.patch(f"/event_handler/{handler.json()['id']}", json={"enabled": True})
        _wait_for(control, sink, events)
        enable_to_done_s = time.perf_counter() - started
        api.patch(f"/event_handler/{handler.json()['id']}", json={"enabled": False})
        raw_after = asyncio.run(_raw_loop(f"{sink}/hook", bodies))
    herald_s = sending_seconds(api, handler.json()["id"])
    # the raw loop runs before and after Herald: a drift of the machine's speed during the
    # run then weighs on both sides alike
    herald_rate, raw_rate = rate(events, herald_s), rate(events, (raw_before + raw_after) / 2)
    return {
        "events": events,
        "batch": batch,
        "enable_to_done_s": round(enable_to_done_s, 3),
        "herald_events_per_s": herald_rate,
        "raw_httpx_events_per_s": raw_rate,
        "ratio": round(herald_rate / raw_rate, 3),
    }


def _latency(api: httpx.Client, sink: str, seconds: float) -> Result:
    spec = {
        "name": "bench-latency",
        "url": f"{sink}/hook",
        "batch": {"max_events": BATCH, "max_wait_ms": 0},
        "organisation_id": 1,
    }
    api.post("/event_handler", json=spec).raise_for_status()
    per_tick = int(LATENCY_RATE * LATENCY_TICK_S)
    ticks = int(seconds / LATENCY_TICK_S)
    with httpx.Client(timeout=10) as control:
        control.get(f"{sink}/reset")
        started = time.perf_counter()
        for tick in range(ticks):
            time.sleep(max(0.0, started + tick * LATENCY_TICK_S - time.perf_counter()))
            sent = time.time() * 1000
            docs = [document(tick * per_tick + k, organisation_id=1) for k in range(per_tick)]
            for doc in docs:
                doc["detail"] = {"sent_ms": sent}
            api.post("/event", content=orjson.dumps(docs)).raise_for_status()
        achieved = ticks * per_tick / (time.perf_counter() - started)
        stats = _wait_for(control, sink, ticks * per_tick)
    return {"offered_events_per_s": round(achieved, 1), **percentiles(stats["latencies_ms"])}


def delivery_bench(mode: Mode, workdir: Path) -> Result:
    """Batched and single delivery throughput, the latency at 1,000 events/s, peak RSS."""
    env = {
        "HERALD_DELIVERY_ENABLED": "false",  # delivery runs in its own worker process
        "HERALD_ALLOW_PRIVATE_TARGETS": "true",  # the receiver is on loopback
        "HERALD_RATE_LIMIT_PER_SECOND": "0",
    }
    with (
        receiver() as sink,
        herald_server(workdir / "delivery", HERALD_SQLITE_SYNCHRONOUS="FULL", **env) as server,
        worker(server) as process,
        server.client(server.admin_token) as api,
    ):
        batched = _throughput(server, api, sink, mode.delivery_events, BATCH)
        single = _throughput(server, api, sink, mode.delivery_single_events, 1)
        latency = _latency(api, sink, mode.latency_seconds)
        assert server.process is not None
        rss = {
            "server_peak_rss_mb": peak_rss_mb(server.process.pid),
            "worker_peak_rss_mb": peak_rss_mb(process.pid),
        }
    return {"batched": batched, "single": single, "latency_at_1000_per_s": latency, **rss}
