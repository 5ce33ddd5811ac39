"""Delivery end to end: the app served in process (a ``herald serve`` process where it is
killed) pushing to real receivers on loopback."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cloudevents.core.formats.json import JSONFormat
from standardwebhooks import Webhook

from tests.delivery.receiver import (
    Received,
    event_ids,
    receiving,
    start_delivery_in_process,
    start_delivery_server,
    tenant,
)
from tests.support.dates import D3
from tests.support.herald import Herald
from tests.support.metrics import increase, scrape
from tests.support.server import HeraldServer
from tests.support.waiting import wait_until


@pytest.fixture
def herald(tmp_path: Path, database_url: str) -> Iterator[Herald]:
    server = start_delivery_in_process(tmp_path / "herald", database_url)  # once per backend
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def herald_process(tmp_path: Path, database_url: str) -> Iterator[HeraldServer]:
    """A ``herald serve`` process, for the test that kills it."""
    server = start_delivery_server(tmp_path / "herald", database_url)
    try:
        yield server
    finally:
        server.stop()


CUSTOM = {"event_types": [10001, 10002]}
"""The codes these tests post: other events of the tenant (audit records, say) stay out."""


def create_handler(client: httpx.Client, url: str, **fields: Any) -> dict[str, Any]:
    body = {"name": "hook", "url": url, "filter": CUSTOM, **fields}
    response = client.post("/event_handler", json=body)
    assert response.status_code == 201, response.text
    handler: dict[str, Any] = response.json()
    return handler


def post_events(client: httpx.Client, count: int, code: int = 10001) -> list[int]:
    batch = [{"event_type": {"id": code}, "description": f"e{i}"} for i in range(count)]
    response = client.post("/event", json=batch)
    assert response.status_code == 201, response.text
    return [event["id"] for event in response.json()]


def verify(request: Received, secret: str) -> Any:
    return Webhook(secret).verify(request.body, request.headers)


def test_signed_native_events_arrive_in_order(herald: Herald) -> None:
    _, token = tenant(herald)
    with receiving() as receiver, herald.client(token) as client:
        handler = create_handler(client, receiver.url)
        assert handler["secret"].startswith("whsec_")
        ids = post_events(client, 5)
        receiver.wait_for(lambda: len(receiver.delivered_ids()) >= 5)
        assert receiver.delivered_ids() == ids
        for request in receiver.delivered():
            record = verify(request, handler["secret"])
            assert record["event_type"]["id"] == 10001
            assert request.headers["content-type"] == "application/json"
        path = f"/event_handler/{handler['id']}"
        receiver.wait_for(lambda: client.get(f"{path}/status").json()["lag_events"] == 0)
        status = client.get(f"{path}/status").json()
        assert status["state"] == "active" and status["delivery"]["mode"] == "serve"
        assert status["last_success"] is not None and status["consecutive_failures"] == 0
        log = client.get(f"{path}/delivery").json()
        assert [entry["event_ids"] for entry in reversed(log)] == [[i] for i in ids]
        assert all(entry["outcome"] == "delivered" and entry["status"] == 200 for entry in log)


def test_cloudevents_batches_parse_with_the_sdk(herald: Herald) -> None:
    organisation, token = tenant(herald)
    with receiving() as receiver, herald.client(token) as client:
        handler = create_handler(
            client,
            receiver.url,
            format="cloudevents",
            batch={"max_events": 10, "max_wait_ms": 300},
        )
        ids = post_events(client, 7)
        receiver.wait_for(lambda: len(receiver.delivered_ids()) >= 7)
        assert receiver.delivered_ids() == ids
        for request in receiver.delivered():
            assert request.headers["content-type"] == "application/cloudevents-batch+json"
            verify(request, handler["secret"])
            for document in request.json():
                import orjson

                event = JSONFormat().read(None, orjson.dumps(document))
                assert event.get_specversion() == "1.0"
                assert event.get_type() == "io.herald.event.10001"
                assert event.get_source() == f"/herald/organisations/{organisation}"
                data = event.get_data()
                assert isinstance(data, dict) and event.get_id() == str(data["id"])


def test_receiver_outage_loses_nothing_and_keeps_order(herald: Herald) -> None:
    before = scrape(herald)
    _, token = tenant(herald)
    outage = {"left": 6}

    def flaky(_: Received) -> tuple[int, dict[str, str]]:
        if outage["left"] > 0:
            outage["left"] -= 1
            return 503, {}
        return 200, {}

    with receiving(flaky) as receiver, herald.client(token) as client:
        handler = create_handler(client, receiver.url, format="ndjson", batch={"max_events": 3})
        ids = post_events(client, 10)
        receiver.wait_for(lambda: len(set(receiver.delivered_ids())) >= 10)
        delivered = receiver.delivered_ids()
        assert delivered == ids  # in order, none missing, none twice (each 503 was retried)
        assert receiver.answered.count(503) == 6
        log = client.get(f"/event_handler/{handler['id']}/delivery", params={"per_page": 4})
        assert log.headers["X-Next-Cursor"]
        older = client.get(
            f"/event_handler/{handler['id']}/delivery",
            params={"cursor": log.headers["X-Next-Cursor"]},
        ).json()
        outcomes = [e["outcome"] for e in older] + [e["outcome"] for e in log.json()]
        assert outcomes.count("retry") == 6
        wait_until(
            lambda: (
                increase(herald, before, 'herald_deliveries_total{outcome="delivered"}')
                == len(receiver.delivered())
            ),
            60,
        )
    # each 503 was a failed request that is tried again
    assert increase(herald, before, "herald_delivery_retries_total") == 6
    assert increase(herald, before, "herald_delivery_failures_total") == 6
    assert increase(herald, before, 'herald_deliveries_total{outcome="retry"}') == 6


def test_sigkill_during_delivery_loses_nothing(herald_process: HeraldServer) -> None:
    _, token = tenant(herald_process)
    requests = itertools.count(1)
    holding, release = threading.Event(), threading.Event()

    def hold_the_sixth(_: Received) -> tuple[int, dict[str, str]]:
        """Answers the sixth request only once the server that sent it has been killed."""
        if next(requests) == 6:
            holding.set()
            release.wait(120)
        return 200, {}

    with receiving(hold_the_sixth) as receiver:
        with herald_process.client(token) as client:
            create_handler(client, receiver.url)
            ids = post_events(client, 200)
        receiver.wait_for(holding.is_set, timeout=120)
        herald_process.kill()  # while its sixth request waits for the answer
        got_before = receiver.delivered_ids()
        release.set()
        receiver.wait_for(lambda: len(receiver.requests) == 6)  # the late answer, recorded
        herald_process.start()
        receiver.wait_for(lambda: len(set(receiver.delivered_ids())) >= 200, timeout=120)
        delivered = receiver.delivered_ids()
        assert sorted(set(delivered)) == sorted(ids)
        # at least once, in order: dropping repeats of what was already seen gives the log order
        first_seen = list(dict.fromkeys(delivered))
        assert first_seen == ids
        # The kill landed mid-delivery: five events were through, the sixth was on the wire
        # (its answer came too late to be recorded: it was sent again), the rest not sent.
        assert got_before == ids[:5]
        assert delivered.count(ids[5]) == 2


def test_dead_handler_does_not_delay_a_live_one(herald: Herald) -> None:
    _, token = tenant(herald)

    def hang(_: Received) -> tuple[int, dict[str, str]]:
        time.sleep(3)
        return 200, {}

    # Bound but not listening: connecting is refused, and no other process can take the port.
    with (
        socket.socket() as nobody,
        receiving() as live,
        receiving(hang) as slow,
        herald.client(token) as client,
    ):
        nobody.bind(("127.0.0.1", 0))
        create_handler(client, f"http://127.0.0.1:{nobody.getsockname()[1]}/nobody-listens")
        create_handler(client, slow.url)
        create_handler(client, live.url)
        ids = post_events(client, 20)
        live.wait_for(lambda: len(live.delivered_ids()) >= 20, timeout=10)
        assert live.delivered_ids() == ids
        assert len(slow.delivered()) <= 1  # still stuck in its first few requests


def test_replay_redelivers_exactly_the_range(herald: Herald) -> None:
    _, token = tenant(herald)
    with receiving() as receiver, herald.client(token) as client:
        handler = create_handler(client, receiver.url)
        base = f"{D3}T00:00:0"
        batch = [{"event_type": {"id": 10002}, "timestamp": f"{base}{i}Z"} for i in range(6)]
        stored = client.post("/event", json=batch).json()
        ids = [event["id"] for event in stored]
        receiver.wait_for(lambda: len(receiver.delivered_ids()) >= 6)
        response = client.post(
            f"/event_handler/{handler['id']}/replay",
            json={"from": f"{base}2Z", "until": f"{base}4Z"},
        )
        assert response.status_code == 202, response.text
        receiver.wait_for(lambda: len(receiver.delivered_ids()) >= 9)
        time.sleep(0.3)  # nothing more may come; a surplus would show below
        assert receiver.delivered_ids() == ids + ids[2:5]
        replayed = receiver.delivered()[6:]
        assert all(r.headers["webhook-id"].startswith("r") for r in replayed)
        bad = client.post(
            f"/event_handler/{handler['id']}/replay",
            json={"from": f"{base}4Z", "until": f"{base}2Z"},
        )
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "until"


def test_a_tenant_never_sees_another_tenants_events(herald: Herald) -> None:
    org_a, token_a = tenant(herald, "A")
    org_b, token_b = tenant(herald, "B")
    with receiving() as receiver_a, receiving() as receiver_b:
        with herald.client(token_a) as a, herald.client(token_b) as b:
            create_handler(a, receiver_a.url, filter={})  # everything of its own tenant
            create_handler(b, receiver_b.url, filter={})
            ids_a = post_events(a, 3)
            ids_b = post_events(b, 4)
        receiver_a.wait_for(lambda: set(ids_a) <= set(receiver_a.delivered_ids()))
        receiver_b.wait_for(lambda: set(ids_b) <= set(receiver_b.delivered_ids()))
        time.sleep(0.3)
        for receiver, own, other in ((receiver_a, org_a, ids_b), (receiver_b, org_b, ids_a)):
            records = [r.json() for r in receiver.delivered()]
            assert {record["organisation"]["id"] for record in records} == {own}
            assert not set(other) & set(receiver.delivered_ids())


def test_filters_select_events(herald: Herald) -> None:
    _, token = tenant(herald)
    with receiving() as receiver, herald.client(token) as client:
        create_handler(client, receiver.url, filter={"event_types": [10005], "alert_only": True})
        client.post("/event", json={"event_type": {"id": 10005}, "alert": False})
        wanted = client.post("/event", json={"event_type": {"id": 10005}, "alert": True}).json()
        client.post("/event", json={"event_type": {"id": 10006}, "alert": True})
        receiver.wait_for(lambda: len(receiver.delivered_ids()) >= 1)
        time.sleep(0.3)
        assert receiver.delivered_ids() == [wanted["id"]]


def test_rotation_signs_with_both_secrets(herald: Herald) -> None:
    _, token = tenant(herald)
    with receiving() as receiver, herald.client(token) as client:
        handler = create_handler(client, receiver.url)
        rotated = client.post(f"/event_handler/{handler['id']}/secret/rotate").json()
        assert rotated["secret"] != handler["secret"] and rotated["previous_secret_valid_until"]
        test = client.post(f"/event_handler/{handler['id']}/test").json()
        assert test["outcome"] == "delivered" and test["status"] == 200
        (request,) = receiver.delivered()
        assert len(request.headers["webhook-signature"].split(" ")) == 2
        verify(request, handler["secret"])
        verify(request, rotated["secret"])
        assert request.json()["test"] is True
        assert (
            event_ids(request)
            and "secret" not in client.get(f"/event_handler/{handler['id']}").json()
        )
