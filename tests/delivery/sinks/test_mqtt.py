"""The MQTT sink end to end: Herald's app in process (each backend) publishing to the
machine's Mosquitto through a loopback proxy, a real subscriber checking what arrives; a
real ``herald serve`` for the kill."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.delivery.sinks.common import (
    PASSWORD,
    assert_never_shown,
    attempts,
    create,
    eventually,
    first_seen,
    post_events,
    replay,
    unique,
)
from tests.delivery.sinks.proxy import proxy
from tests.support.inproc import InProcessHerald
from tests.support.server import HeraldServer

BROKER_PORT = 1883


@dataclass
class Subscriber:
    """Every message on a topic filter, in arrival order (QoS 1)."""

    messages: list[tuple[str, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ids(self) -> list[int]:
        with self.lock:
            return [orjson.loads(body)["id"] for _, body in self.messages]

    def topics(self) -> list[str]:
        with self.lock:
            return [topic for topic, _ in self.messages]


@pytest.fixture
def subscriber() -> Iterator[tuple[str, Subscriber]]:
    base = unique("herald-test")
    got = Subscriber()
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2)

    def on_message(_: mqtt.Client, __: object, message: mqtt.MQTTMessage) -> None:
        with got.lock:
            got.messages.append((message.topic, bytes(message.payload)))

    client.on_message = on_message
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect("127.0.0.1", BROKER_PORT)
    client.subscribe(f"{base}/#", qos=1)
    client.loop_start()
    assert subscribed.wait(10)
    try:
        yield base, got
    finally:
        client.loop_stop()
        client.disconnect()


def test_events_arrive_in_order_survive_a_cut_and_replay(
    herald: InProcessHerald, api: httpx.Client, subscriber: tuple[str, Subscriber]
) -> None:
    base, got = subscriber
    client = api
    with proxy(BROKER_PORT) as broker:
        handler = create(
            client,
            type="mqtt",
            url=f"mqtt://{broker.url_host}",
            settings={"topic": base + "/{organisation_id}/{event_type}/{severity}"},
            credentials={"username": "herald", "password": PASSWORD},
        )
        assert handler["settings"]["topic"].startswith(base)
        assert handler["credentials_set"] is True
        first = post_events(client, 5)
        eventually(lambda: len(got.ids()) >= 5, what="the first events")
        assert got.ids() == first
        organisation = handler["organisation"]["id"]
        assert set(got.topics()) == {f"{base}/{organisation}/10001/info"}

        broker.cut(stay_down=True)  # the broker goes away mid-stream...
        second = post_events(client, 5, code=10002)
        eventually(
            lambda: any(a["outcome"] == "retry" for a in attempts(client, handler["id"])),
            what="a failed attempt while the broker is away",
        )
        broker.up()  # ...and comes back: nothing lost, the order holds
        eventually(lambda: set(second) <= set(got.ids()), what="the events sent meanwhile")
        assert first_seen(got.ids()) == first + second
        assert f"{base}/{organisation}/10002/info" in got.topics()

        def status() -> dict[str, object]:
            found: dict[str, object] = client.get(f"/event_handler/{handler['id']}/status").json()
            return found

        eventually(lambda: status()["lag_events"] == 0, what="the cursor past the last ack")
        assert status()["state"] == "active"

        since = client.get("/event", params={"per_page": 1000}).json()
        oldest = min(e["timestamp"] for e in since if e["id"] in first)
        count = len(got.ids())
        replay(client, handler["id"], oldest)
        eventually(lambda: len(got.ids()) >= count + 10, what="the replay")
        assert got.ids()[count:] == first + second

        tested = client.post(f"/event_handler/{handler['id']}/test")
        assert tested.status_code == 200, tested.text
        assert tested.json()["outcome"] == "delivered"
        assert "PUBACK" in tested.json()["detail"]
        assert_never_shown(herald, client, handler["id"])


def test_batches_go_as_one_message_per_topic_run(
    api: httpx.Client, subscriber: tuple[str, Subscriber]
) -> None:
    base, got = subscriber
    client = api
    create(
        client,
        type="mqtt",
        url=f"mqtt://127.0.0.1:{BROKER_PORT}",
        settings={"topic": base + "/{event_type}"},
        format="ndjson",
        batch={"max_events": 10, "max_wait_ms": 500},
    )
    sent = post_events(client, 3) + post_events(client, 2, code=10002)
    eventually(lambda: len(got.topics()) >= 2, what="the batches")
    with got.lock:
        bodies = [(topic, body) for topic, body in got.messages]
    lines = [orjson.loads(line)["id"] for _, body in bodies for line in body.splitlines()]
    assert lines == sent
    assert [topic for topic, _ in bodies] == [f"{base}/10001", f"{base}/10002"]


def test_unreachable_broker_is_reported_by_the_test_route(api: httpx.Client) -> None:
    client = api
    with proxy(BROKER_PORT) as broker:
        broker.cut(stay_down=True)
        handler = create(
            client,
            type="mqtt",
            url=f"mqtt://{broker.url_host}",
            settings={"topic": unique("herald-test") + "/t"},
            enabled=False,
        )
        tested = client.post(f"/event_handler/{handler['id']}/test").json()
    assert tested["outcome"] == "retry" and tested["error"]


def test_a_killed_worker_loses_nothing(
    process: HeraldServer, process_api: httpx.Client, subscriber: tuple[str, Subscriber]
) -> None:
    base, got = subscriber
    create(
        process_api,
        type="mqtt",
        url=f"mqtt://127.0.0.1:{BROKER_PORT}",
        settings={"topic": base + "/events"},
    )
    sent = post_events(process_api, 10)
    eventually(lambda: got.ids(), what="delivery under way")
    process.kill()  # SIGKILL: no drain, no lease given up
    process.restart()
    sent += post_events(process_api, 10)
    eventually(lambda: set(sent) <= set(got.ids()), timeout=30, what="every event after the kill")
    assert first_seen(got.ids()) == sent
