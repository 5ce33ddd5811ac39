"""Cross-tenant starvation through delivery: tenant A points many handlers at a receiver
that trickles its answer a byte at a time; tenant B's healthy handler must still deliver at
once, with no failed attempt. Over a real ``herald serve`` with a small connection pool."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.delivery.receiver import receiving, trickling
from tests.reliability.conftest import make_tenant
from tests.reliability.figures import Figures
from tests.support.inproc import start_in_process
from tests.support.server import start_server
from tests.support.waiting import wait_until

A_HANDLERS = 8


def test_a_trickling_tenant_does_not_starve_another(tmp_path: Path, figures: Figures) -> None:
    server = start_server(
        tmp_path / "herald",
        env={
            "HERALD_ALLOW_PRIVATE_TARGETS": "true",
            "HERALD_DELIVERY_POLL_SECONDS": "0.05",
            "HERALD_DELIVERY_TIMEOUT_SECONDS": "10",
            "HERALD_DELIVERY_MAX_CONNECTIONS": "4",
            "HERALD_DELIVERY_CONNECTIONS_PER_ORGANISATION": "2",
            "HERALD_DELIVERY_DRAIN_SECONDS": "1",
        },
    )
    try:
        a, b = make_tenant(server, "Attacker"), make_tenant(server, "Bystander")
        with (
            trickling(0.5) as trickler,  # 40 bytes: 20 s for an answer, were it waited for
            receiving() as healthy,
            server.client(a.token) as as_a,
            server.client(b.token) as as_b,
        ):
            for number in range(A_HANDLERS):
                body = {"name": f"slow {number}", "url": trickler.url}
                assert as_a.post("/event_handler", json=body).status_code == 201
            b_handler = as_b.post("/event_handler", json={"name": "b", "url": healthy.url}).json()
            as_a.post("/event", json={"event_type": {"id": 10001}}).raise_for_status()
            wait_until(lambda: trickler.open >= 2, 10)
            time.sleep(0.5)  # A's other handlers queue behind its two requests

            latencies = []
            for _ in range(3):
                sent = time.monotonic()
                event_id = as_b.post("/event", json={"event_type": {"id": 10001}}).json()["id"]
                wait_until(lambda: event_id in healthy.delivered_ids(), 10)  # noqa: B023
                latencies.append(time.monotonic() - sent)
            path = f"/event_handler/{b_handler['id']}/delivery"
            # the attempt is recorded just after the receiver answered: wait for the third
            wait_until(lambda: len(as_b.get(path).json()) >= 3, 10)
            log = as_b.get(path).json()

            # A's requests end at the 10 s deadline as failed attempts, never held for 20 s
            def a_attempts() -> list[dict[str, Any]]:
                return [
                    attempt
                    for handler in as_a.get("/event_handler").json()
                    for attempt in as_a.get(f"/event_handler/{handler['id']}/delivery").json()
                ]

            wait_until(lambda: any(d["error"] == "timeout" for d in a_attempts()), 20)
            slow = a_attempts()
    finally:
        server.stop()
    figures.add("starvation.bystander_deliveries", len(latencies))
    figures.note("starvation.bystander_worst_seconds", f"{max(latencies):.2f}")
    # starved, B would wait for one of A's requests to end: 10 s (typically it takes 0.1 s)
    assert max(latencies) < 5, f"tenant B's events came {latencies} s after they were written"
    assert {d["outcome"] for d in log} == {"delivered"} and len(log) == 3
    assert trickler.held() <= 2  # A never held more than its share of the pool
    timed_out = [d for d in slow if d["error"] == "timeout"]
    assert timed_out and all(d["latency_ms"] < 18_000 for d in timed_out)


def test_handler_urls_with_control_characters_are_refused(tmp_path: Path) -> None:
    server = start_in_process(tmp_path / "herald")
    try:
        tenant = make_tenant(server, "Acme")
        with server.client(tenant.token) as client:
            for url in (
                "https://example.com/a\r\nX: 1",
                "https://example.com/a b",
                "https://e.x/\x7f",
            ):
                response = client.post("/event_handler", json={"name": "h", "url": url})
                assert response.status_code == 422, (url, response.text)
                assert [e["field"] for e in response.json()["errors"]] == ["url"]
            assert client.get("/event_handler").json() == []
    finally:
        server.stop()


IDLE_LIMIT = 100  # HERALD_MAX_HANDLERS_PER_ORGANISATION's default


def test_a_tenant_with_every_handler_it_may_have_does_not_delay_another(
    tmp_path: Path, figures: Figures
) -> None:
    """Tenant A fills its handler limit (one more is refused) with handlers that want only
    type 3 and writes events of other types; tenant B's one handler still delivers at once."""
    server = start_server(
        tmp_path / "herald",
        env={"HERALD_ALLOW_PRIVATE_TARGETS": "true", "HERALD_DELIVERY_POLL_SECONDS": "0.05"},
    )
    try:
        a, b = make_tenant(server, "Many"), make_tenant(server, "Bystander")
        with (
            receiving() as sink,
            server.client(a.token) as as_a,
            server.client(b.token) as as_b,
        ):
            for number in range(IDLE_LIMIT):
                body = {"name": f"idle {number}", "url": sink.url, "filter": "type:3"}
                assert as_a.post("/event_handler", json=body).status_code == 201
            refused = as_a.post("/event_handler", json={"name": "one more", "url": sink.url})
            as_b.post("/event_handler", json={"name": "b", "url": sink.url}).raise_for_status()
            time.sleep(1)  # every handler taken up and asleep

            latencies = []
            for _ in range(10):
                as_a.post("/event", json=[{"event_type": {"id": 10001}}] * 50).raise_for_status()
                sent = time.monotonic()
                event_id = as_b.post("/event", json={"event_type": {"id": 10001}}).json()["id"]
                wait_until(lambda: event_id in sink.delivered_ids(), 10)  # noqa: B023
                latencies.append(time.monotonic() - sent)
            delivered = sink.delivered_ids()
    finally:
        server.stop()
    figures.add("starvation.idle_handlers_of_one_tenant", IDLE_LIMIT)
    figures.note("starvation.idle_bystander_worst_seconds", f"{max(latencies):.2f}")
    assert refused.status_code == 409 and refused.json()["title"] == "Limit reached"
    assert len(delivered) == 10  # none of A's events went to A's type-3 handlers
    assert max(latencies) < 2.5, f"tenant B's events came {latencies} s after they were written"
