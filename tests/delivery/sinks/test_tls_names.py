"""Every TLS sink connects to the address it checked and verifies the certificate for the
name (SNI): DNS is asked once per connection, never again by the client library (issue #28,
defect 8: a second resolution was a DNS rebinding window).

In process: a resolver that answers the name with 127.0.0.1 the first time and 127.0.0.2
(where nothing listens) after; TLS in front of the machine's brokers (and moto, and a plain
HTTP receiver) by a TLS-terminating proxy of a certificate for the name only, recording the
SNI it is sent; nats-server, whose TLS begins inside its protocol, with that certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import ssl
import subprocess
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aio_pika
import boto3
import nats
import pytest
from moto.server import ThreadedMotoServer
from nats.js.api import StreamConfig

from herald.delivery.formats import Item
from herald.delivery.sinks.base import BrokerSink, Outgoing, SinkConfig
from herald.delivery.sinks.mqtt import MqttSink
from herald.delivery.sinks.nats import NatsSink
from herald.delivery.webhook import WebhookSender
from herald.handlers.types import Handler, HandlerSpec
from tests.delivery.sinks.common import unique
from tests.delivery.sinks.pki import Authority, Issued
from tests.delivery.sinks.proxy import _pump
from tests.support.server import free_port
from tests.support.waiting import wait_until

NAME = "herald-sink"  # one label: moto takes a dotted name's first label for a bucket
MOSQUITTO, RABBITMQ = 1883, 5672
_REAL_GETADDRINFO = socket.getaddrinfo


@dataclass
class Resolver:
    """``socket.getaddrinfo`` for NAME: 127.0.0.1 first, 127.0.0.2 after; counts the asks."""

    asked: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name != NAME:
            return _REAL_GETADDRINFO(host, port, *args, **kwargs)
        with self.lock:
            self.asked += 1
            address = "127.0.0.1" if self.asked == 1 else "127.0.0.2"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 0)))]


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    answers = Resolver()
    monkeypatch.setattr(socket, "getaddrinfo", answers)
    return answers


@dataclass(frozen=True)
class Pki:
    ca: Authority
    named: Issued  # a certificate of NAME alone
    other: Issued  # of another name
    ca_file: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = Authority("Herald name test CA")
    ca_file = tmp_path_factory.mktemp("pki") / "ca.pem"
    ca_file.write_text(ca.pem)
    return Pki(
        ca,
        ca.issue("sink", dns_name=NAME),
        ca.issue("other", dns_name="other-sink"),
        ca_file,
    )


@dataclass
class TlsProxy:
    """TLS ends here (the certificate given); the bytes go on to a plain loopback port."""

    port: int
    names: list[str | None] = field(default_factory=list)  # the SNI of each handshake
    sockets: list[socket.socket] = field(default_factory=list)  # closed at the end


@contextlib.contextmanager
def tls_proxy(upstream_port: int, issued: Issued, directory: Path) -> Iterator[TlsProxy]:
    cert, key = issued.write(directory, unique("cert"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    running = TlsProxy(listener.getsockname()[1])

    def sni(_: ssl.SSLObject | ssl.SSLSocket, name: str | None, __: ssl.SSLContext) -> None:
        running.names.append(name)

    context.sni_callback = sni

    def serve() -> None:
        while True:
            try:
                raw, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(raw,), daemon=True).start()

    def handle(raw: socket.socket) -> None:
        raw.settimeout(10)
        client = context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        try:
            client.do_handshake()
            client.settimeout(None)
            upstream = socket.create_connection(("127.0.0.1", upstream_port), 5)
        except OSError:  # the client refused the certificate, say
            client.close()
            return
        running.sockets += [client, upstream]
        pumps = [
            threading.Thread(target=_pump, args=pair, daemon=True)
            for pair in ((client, upstream), (upstream, client))
        ]
        for pump in pumps:
            pump.start()
        for pump in pumps:
            pump.join()
        client.close()
        upstream.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield running
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(5)
        for sock in running.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def outgoing(kind: str) -> Outgoing:
    spec = HandlerSpec(name="sink", url=f"{kind}://{NAME}", type=kind)
    handler = Handler(
        1, 1, spec, None, "", None, None, 0, 0, None, None, None, None, None, None, 0, 0
    )
    body = b'{"id":1,"received":"2026-12-07T00:00:00.000Z","organisation":{"id":1}}'
    return Outgoing(handler, [Item(1, 1, body)], "1", datetime.now(UTC))


async def _send(sink: BrokerSink, kind: str) -> tuple[bool, str | None]:
    try:
        result = await sink.send(outgoing(kind))
        return result.acked, result.error
    finally:
        await sink.aclose()


def _config(kind: str, url: str, pki: Pki, **settings: Any) -> SinkConfig:
    return SinkConfig(kind, url, {"ca_cert": pki.ca.pem, **settings}, {}, True, 10)


def _sinks(
    pki: Pki, moto: int, bucket: str, queue: str
) -> dict[str, tuple[int, Callable[[int], Any]]]:
    """Per sink: the plain port the proxy forwards to, and the send through proxy ``port``."""

    def mqtt(port: int) -> Any:
        sink = MqttSink(_config("mqtt", f"mqtts://{NAME}:{port}", pki, topic="herald-tls/t"), 1)
        return _send(sink, "mqtt")

    def amqp(port: int) -> Any:
        from herald.delivery.sinks.amqp import AmqpSink

        config = _config("amqp", f"amqps://{NAME}:{port}", pki, exchange="", routing_key=queue)
        return _send(AmqpSink(config), "amqp")

    def s3(port: int) -> Any:
        from herald.delivery.sinks.s3 import S3Sink

        config = SinkConfig(
            "s3",
            f"https://{NAME}:{port}",
            {"bucket": bucket, "region": "us-east-1", "tls_verify": True},
            {"access_key_id": "test", "secret_access_key": "test"},
            True,
            10,
        )
        return _send(S3Sink(config), "s3")

    return {"mqtt": (MOSQUITTO, mqtt), "amqp": (RABBITMQ, amqp), "s3": (moto, s3)}


@pytest.fixture(scope="module")
def moto() -> Iterator[tuple[int, str]]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    bucket = unique("herald-tls")
    s3.create_bucket(Bucket=bucket)
    try:
        yield port, bucket
    finally:
        for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=item["Key"])
        s3.delete_bucket(Bucket=bucket)
        s3.close()
        server.stop()


@pytest.fixture(scope="module")
def queue() -> Iterator[str]:
    name = unique("herald-tls")

    async def declare(delete: bool) -> None:
        connection = await aio_pika.connect(host="127.0.0.1", port=RABBITMQ)
        async with connection:
            channel = await connection.channel()
            if delete:
                await channel.queue_delete(name)
            else:
                await channel.declare_queue(name)

    asyncio.run(declare(False))
    try:
        yield name
    finally:
        asyncio.run(declare(True))


@pytest.mark.parametrize("kind", ["mqtt", "amqp", "s3"])
def test_a_broker_sink_connects_to_the_checked_address_with_the_name(
    kind: str,
    resolver: Resolver,
    pki: Pki,
    moto: tuple[int, str],
    queue: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the S3 sink verifies against botocore's CA bundle (it has no ca_cert): ours, here
    monkeypatch.setattr("aiobotocore.httpsession.get_cert_path", lambda _: str(pki.ca_file))
    upstream, send = _sinks(pki, *moto, queue)[kind]
    with tls_proxy(upstream, pki.named, tmp_path) as proxy:
        acked, error = asyncio.run(send(proxy.port))
    assert (acked, error) == (True, None)
    assert resolver.asked == 1  # the check's; the connection went to its answer
    assert proxy.names and set(proxy.names) == {NAME}  # SNI: the name, not the address

    resolver.asked = 0
    with tls_proxy(upstream, pki.other, tmp_path) as proxy:
        acked, error = asyncio.run(send(proxy.port))
    with warnings.catch_warnings():  # paho drops (unclosed) the socket of a failed handshake
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    assert not acked and error is not None  # a certificate of another name is refused
    assert "certificate" in error.lower() or "CERTIFICATE" in error, error


class _Ok(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        """Quiet."""


def test_a_webhook_connects_to_the_checked_address_with_the_name(
    resolver: Resolver, pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))  # the system's CAs: ours, here
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()

    async def post(port: int) -> tuple[int | None, str | None]:
        sender = WebhookSender(timeout=10, allow_private=True)
        try:
            result = await sender.send(f"https://{NAME}:{port}/hook", b"{}", {})
            return result.status, result.error
        finally:
            await sender.aclose()

    try:
        with tls_proxy(receiver.server_address[1], pki.named, tmp_path) as proxy:
            assert asyncio.run(post(proxy.port)) == (200, None)
        assert resolver.asked == 1 and set(proxy.names) == {NAME}
        resolver.asked = 0
        with tls_proxy(receiver.server_address[1], pki.other, tmp_path) as proxy:
            status, error = asyncio.run(post(proxy.port))
        assert status is None and error is not None and "certificate" in error.lower(), error
    finally:
        receiver.shutdown()
        receiver.server_close()


@contextlib.contextmanager
def named_nats(directory: Path, issued: Issued) -> Iterator[int]:
    """nats-server with JetStream and TLS of ``issued`` (no client certificate asked)."""
    cert, key = issued.write(directory, "nats")
    port = free_port()
    config = directory / "nats.conf"
    config.write_text(
        f'listen: "127.0.0.1:{port}"\n'
        f'jetstream {{ store_dir: "{directory / "js"}" }}\n'
        f'tls {{ cert_file: "{cert}", key_file: "{key}" }}\n'
    )
    log = directory / "nats.log"
    with log.open("wb") as output:
        process = subprocess.Popen(["nats-server", "-c", str(config)], stdout=output, stderr=output)
    try:
        wait_until(lambda: _listening(port), 10, log.read_text)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_a_nats_sink_connects_to_the_checked_address_with_the_name(
    resolver: Resolver, pki: Pki, tmp_path: Path
) -> None:
    with named_nats(tmp_path, pki.named) as port:
        subject = unique("herald-tls")

        async def run() -> tuple[bool, str | None]:
            context = ssl.create_default_context(cadata=pki.ca.pem)
            admin = await nats.connect(f"tls://127.0.0.1:{port}", tls=context, tls_hostname=NAME)
            try:
                await admin.jetstream().add_stream(StreamConfig(name=subject, subjects=[subject]))
            finally:
                await admin.close()
            config = _config("nats", f"tls://{NAME}:{port}", pki, subject=subject)
            return await _send(NatsSink(config), "nats")

        assert asyncio.run(run()) == (True, None)
    assert resolver.asked == 1
