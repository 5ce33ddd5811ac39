"""Client certificates (mTLS) end to end: a throwaway Mosquitto on loopback that requires a
certificate of its own CA, a real ``herald serve`` (each backend) publishing through
``mqtts://`` with the handler's certificate, a subscriber checking what arrives."""

from __future__ import annotations

import getpass
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.delivery.sinks.common import attempts, create, eventually, post_events, unique
from tests.delivery.sinks.pki import Authority, Issued
from tests.support.server import HeraldServer, free_port
from tests.support.waiting import wait_until


@dataclass(frozen=True)
class TlsBroker:
    port: int
    ca: Authority
    directory: Path


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    """Mosquitto on 127.0.0.1 taking TLS connections with a client certificate only."""
    directory = tmp_path_factory.mktemp("mosquitto")
    ca = Authority("Herald test CA")
    (directory / "ca.pem").write_text(ca.pem)
    cert, key = ca.issue("broker", server=True).write(directory, "broker")
    port = free_port()
    config = directory / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\n"
        f"cafile {directory / 'ca.pem'}\ncertfile {cert}\nkeyfile {key}\n"
        "require_certificate true\nallow_anonymous true\npersistence false\n"
        f"user {getpass.getuser()}\n"  # as root it would drop to a user who cannot read these
    )
    log = (directory / "mosquitto.log").open("wb")
    process = subprocess.Popen(["mosquitto", "-c", str(config)], stdout=log, stderr=log)
    try:
        wait_until(lambda: _listening(port), 10, lambda: (directory / "mosquitto.log").read_text())
        yield TlsBroker(port, ca, directory)
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def subscriber(tls_broker: TlsBroker) -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """Every message under a new topic, in arrival order, read with a certificate too."""
    base = unique("herald-tls")
    got: list[tuple[str, bytes]] = []
    lock = threading.Lock()
    subscribed = threading.Event()
    cert, key = tls_broker.ca.issue("subscriber").write(tls_broker.directory, base)
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.tls_set(str(tls_broker.directory / "ca.pem"), str(cert), str(key))

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


def _errors(api: httpx.Client, handler_id: int) -> list[str]:
    return [a["error"] for a in attempts(api, handler_id) if a["error"]]


def _secret_lines(issued: Issued) -> list[str]:
    """Lines of the key's and certificate's PEM that no answer or log line may hold."""
    return [line for pem in (issued.key, issued.cert) for line in pem.splitlines()[1:-1]]


def test_a_client_certificate_delivers_and_none_is_refused(
    herald: HeraldServer,
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
    # refused in the TLS handshake, each for its reason, which the attempt log shows
    for refused, reason in ((without, "certificate required"), (foreign, "unknown ca")):
        errors = eventually(partial(_errors, api, refused["id"]), what="a refused attempt")
        assert reason in errors[0], errors
    assert {topic for topic, _ in got} == {base + "/good"}  # nothing through the others
    tested = api.post(f"/event_handler/{handler['id']}/test").json()
    assert tested["outcome"] == "delivered" and "PUBACK" in tested["detail"]
    refused = api.post(f"/event_handler/{without['id']}/test").json()
    assert refused["outcome"] == "retry" and "certificate required" in refused["error"]

    shown = [api.get("/event_handler").text, str(tested), str(refused), herald.log()]
    for each in (handler, without, foreign):
        for path in ("", "/status", "/delivery"):
            shown.append(api.get(f"/event_handler/{each['id']}{path}").text)
    stored = [path.read_bytes() for path in herald.workdir.glob("herald.db*")]
    for line in _secret_lines(client_pair) + _secret_lines(stranger):
        assert not any(line in text for text in shown)
        assert not any(line.encode() in data for data in stored)  # sealed at rest
