"""Client certificates (mTLS) end to end: a throwaway Mosquitto on loopback that requires a
certificate of its own CA, Herald's app in process (each backend) publishing through
``mqtts://`` with the handler's certificate, a subscriber checking what arrives."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.delivery.sinks.common import (
    assert_pems_never_shown,
    create,
    errors_of,
    eventually,
    post_events,
    unique,
)
from tests.delivery.sinks.pki import Authority
from tests.delivery.sinks.tls_brokers import TlsBroker, mosquitto
from tests.support.inproc import InProcessHerald


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    with mosquitto(tmp_path_factory.mktemp("mosquitto")) as broker:
        yield broker


@pytest.fixture
def subscriber(tls_broker: TlsBroker) -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """Every message under a new topic, in arrival order, read with a certificate too."""
    base = unique("herald-tls")
    got: list[tuple[str, bytes]] = []
    lock = threading.Lock()
    subscribed = threading.Event()
    cert, key = tls_broker.client_files(base)
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.tls_set(str(tls_broker.ca_file), str(cert), str(key))

    def on_message(_: mqtt.Client, __: object, message: mqtt.MQTTMessage) -> None:
        with lock:
            got.append((message.topic, bytes(message.payload)))

    client.on_message = on_message
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect("127.0.0.1", tls_broker.port)
    client.subscribe(f"{base}/#", qos=1)
    client.loop_start()
    assert subscribed.wait(10)
    try:
        yield base, got
    finally:
        client.loop_stop()
        client.disconnect()


def test_a_client_certificate_delivers_and_none_is_refused(
    herald: InProcessHerald,
    api: httpx.Client,
    tls_broker: TlsBroker,
    subscriber: tuple[str, list[tuple[str, bytes]]],
) -> None:
    base, got = subscriber
    url = f"mqtts://127.0.0.1:{tls_broker.port}"
    client_pair = tls_broker.ca.issue("herald")
    handler = create(
        api,
        type="mqtt",
        url=url,
        settings={"topic": base + "/good", "ca_cert": tls_broker.ca.pem},
        credentials={"client_cert": client_pair.cert, "client_key": client_pair.key},
    )
    assert handler["settings"]["ca_cert"] == tls_broker.ca.pem  # not secret: shown
    assert handler["credentials_set"] is True
    without = create(
        api, type="mqtt", url=url, settings={"topic": base + "/none", "ca_cert": tls_broker.ca.pem}
    )
    stranger = Authority("Another CA").issue("herald")  # a certificate the broker does not trust
    foreign = create(
        api,
        type="mqtt",
        url=url,
        settings={"topic": base + "/foreign", "ca_cert": tls_broker.ca.pem},
        credentials={"client_cert": stranger.cert, "client_key": stranger.key},
    )

    sent = post_events(api, 10)
    eventually(lambda: len(got) >= 10, what="the events through mTLS")
    assert [orjson.loads(body)["id"] for _, body in got][:10] == sent
    # refused in the TLS handshake, each for its reason, which the attempt log shows. TLS 1.3
    # checks a client's certificate after the client's side of the handshake: the broker's
    # alert can lose the race with its closing the socket (an EOF then), so one of the
    # attempts (retried every 0.3 s), not always the first, names the reason.
    for refused, reason in ((without, "certificate required"), (foreign, "unknown ca")):
        eventually(
            partial(_errors_naming, api, refused["id"], reason), what=f"a refusal for {reason}"
        )
        errors = errors_of(api, refused["id"])
        assert all(reason in error or "EOF occurred" in error for error in errors), errors
    assert {topic for topic, _ in got} == {base + "/good"}  # nothing through the others
    tested = api.post(f"/event_handler/{handler['id']}/test").json()
    assert tested["outcome"] == "delivered" and "PUBACK" in tested["detail"]
    refused = api.post(f"/event_handler/{without['id']}/test").json()
    assert refused["outcome"] == "retry" and "certificate required" in refused["error"]

    assert_pems_never_shown(
        herald, api, [h["id"] for h in (handler, without, foreign)], [client_pair, stranger]
    )
    assert "BEGIN" not in str(tested) + str(refused)  # the test answers quote no PEM


def _errors_naming(api: httpx.Client, handler_id: int, reason: str) -> list[str]:
    """The handler's attempt errors that name ``reason``."""
    return [error for error in errors_of(api, handler_id) if reason in error]
