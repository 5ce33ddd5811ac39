"""A broker sink closes what it opened on every path, in process: after its broker's
connection is cut and while the broker stays away (NATS), closed after its broker went
(MQTT), and when the broker refuses its login (AMQP). Each leak showed, in the app served
in a test's process, as a warning of an unclosed stream or an error never retrieved, in
whichever test the garbage collector then found it."""

from __future__ import annotations

import asyncio
import gc
import logging
import warnings
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import aio_pika
import nats
import pytest
from nats.js.api import StreamConfig

from herald.delivery.formats import Item
from herald.delivery.sinks.amqp import AmqpSink
from herald.delivery.sinks.base import BrokerSink, Outgoing, SinkConfig
from herald.delivery.sinks.mqtt import MqttSink, _lost
from herald.delivery.sinks.nats import NatsSink
from herald.handlers.types import Handler, HandlerSpec
from tests.delivery.sinks.common import PASSWORD, unique
from tests.delivery.sinks.proxy import Proxy, proxy
from tests.support.waiting import SLACK

NATS_PORT, MOSQUITTO, RABBITMQ = 4222, 1883, 5672
T = TypeVar("T")


def outgoing(kind: str, event_id: int) -> Outgoing:
    spec = HandlerSpec(name="sink", url=f"{kind}://127.0.0.1", type=kind)
    handler = Handler(
        1, 1, spec, None, "", None, None, 0, 0, None, None, None, None, None, None, 0, 0
    )
    body = b'{"id":%d}' % event_id
    return Outgoing(handler, [Item(event_id, event_id, body)], str(event_id), datetime.now(UTC))


def unclosed(
    run: Callable[[], Coroutine[Any, Any, T]], caplog: pytest.LogCaptureFixture
) -> tuple[T, list[str]]:
    """What ``run`` returns, and what it left open once collected: the warnings of unclosed
    streams, sockets and never-awaited coroutines, asyncio's errors (a task destroyed while
    pending, an exception never retrieved)."""
    with (
        warnings.catch_warnings(record=True) as caught,
        caplog.at_level(logging.ERROR, logger="asyncio"),
    ):
        warnings.simplefilter("always")
        result = asyncio.run(run())  # the loop's end cancels and awaits every task left
        gc.collect()
    reported = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    return result, [str(warning.message) for warning in caught] + reported


@pytest.fixture
def stream() -> Iterator[str]:
    """A JetStream stream of its own, deleted after: its name, which is its subject."""
    name = unique("herald-closing").replace("-", "_")

    async def change(delete: bool) -> None:
        client = await nats.connect(f"nats://127.0.0.1:{NATS_PORT}")
        try:
            js = client.jetstream()
            if delete:
                await js.delete_stream(name)
            else:
                await js.add_stream(StreamConfig(name=name, subjects=[name]))
        finally:
            await client.close()

    asyncio.run(change(False))
    try:
        yield name
    finally:
        asyncio.run(change(True))


async def cut_and_back(
    sink: BrokerSink, kind: str, broker: Proxy, seen: Callable[[], bool]
) -> list[bool]:
    """Whether each of four sends was acknowledged: the first connects; before the second
    the broker's connection is cut (and ``seen`` by the client), and the third's connect
    fails (the proxy accepts and closes at once); the fourth connects again; then the sink
    is closed."""
    acked = []
    try:
        for event_id in range(1, 5):
            if event_id == 2:
                broker.cut(stay_down=True)
                async with asyncio.timeout(5 * SLACK):
                    while not seen():
                        await asyncio.sleep(0.01)
            if event_id == 4:
                broker.up()
            result = await sink.send(outgoing(kind, event_id))
            assert result.acked or result.error
            acked.append(result.acked)
    finally:
        await sink.aclose()
    return acked


def test_a_nats_sink_cut_from_its_broker_leaves_nothing_open(
    stream: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: each connect while the broker was away left nats-py's stream open
    ("unclosed <StreamWriter ...>", "unclosed transport", "unclosed <socket ...>")."""
    with proxy(NATS_PORT) as broker:
        config = SinkConfig("nats", f"nats://{broker.url_host}", {"subject": stream}, {}, True, 2)
        sink = NatsSink(config)
        seen = lambda: not sink._alive()  # noqa: E731
        acked, left = unclosed(lambda: cut_and_back(sink, "nats", broker, seen), caplog)
    assert acked == [True, False, False, True]
    assert not left, left


def test_an_mqtt_sink_closed_after_its_broker_went_leaves_nothing_unread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Regression: closing a sink whose connection the broker's side had closed (a handler
    changed or disabled, the server stopping) left the loss's error unread in aiomqtt's
    client: "Future exception was never retrieved ... Unexpected disconnection"."""
    with proxy(MOSQUITTO) as broker:
        topic = {"topic": unique("herald-closing") + "/t"}
        config = SinkConfig("mqtt", f"mqtt://{broker.url_host}", topic, {}, True, 2)

        async def run() -> bool:
            sink = MqttSink(config, 1)
            try:
                acked = (await sink.send(outgoing("mqtt", 1))).acked
                broker.cut(stay_down=True)
                async with asyncio.timeout(5 * SLACK):  # until aiomqtt's client has seen it
                    while sink._client is not None and not _lost(sink._client).done():
                        await asyncio.sleep(0.01)
            finally:
                await sink.aclose()
            return acked

        acked, left = unclosed(run, caplog)
    assert acked
    assert not left, left


def test_an_amqp_login_refused_leaves_no_connection_open(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: aio_pika.connect dropped the connection of a refused login unclosed; its
    ``__del__`` then scheduled a close that nobody awaited, on whatever thread collected it."""
    opened: list[aio_pika.Connection] = []
    connect = aio_pika.Connection.connect

    async def recorded(self: aio_pika.Connection, timeout: Any = None) -> None:
        opened.append(self)
        await connect(self, timeout)

    monkeypatch.setattr(aio_pika.Connection, "connect", recorded)
    credentials = {"username": "guest", "password": PASSWORD}  # not guest's password
    settings = {"exchange": "", "routing_key": unique("herald-closing")}
    config = SinkConfig("amqp", f"amqp://127.0.0.1:{RABBITMQ}/", settings, credentials, True, 10)

    async def run() -> list[str | None]:
        sink = AmqpSink(config)
        try:
            return [(await sink.send(outgoing("amqp", i))).error for i in (1, 2)]
        finally:
            await sink.aclose()

    errors, left = unclosed(run, caplog)
    assert len(errors) == 2 and all(error and "ACCESS_REFUSED" in error for error in errors)
    assert len(opened) == 2
    assert all(connection.is_closed for connection in opened)
    assert not left, left
