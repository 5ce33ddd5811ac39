"""The MQTT sink's connect, in process: a broker that never answers leaves nothing behind;
one that closes the connection before its CONNACK fails the send at once."""

from __future__ import annotations

import asyncio
import gc
import logging
from datetime import UTC, datetime

import pytest

from herald.delivery.formats import Item
from herald.delivery.sinks.base import Outgoing, SinkConfig
from herald.delivery.sinks.mqtt import MqttSink
from herald.handlers.types import Handler, HandlerSpec


def outgoing() -> Outgoing:
    """One event for a handler publishing to topic ``t``."""
    spec = HandlerSpec(name="sink", url="mqtt://127.0.0.1", type="mqtt", settings='{"topic":"t"}')
    handler = Handler(
        1, 1, spec, None, "", None, None, 0, 0, None, None, None, None, None, None, 0, 0
    )
    return Outgoing(handler, [Item(1, 1, b'{"id":1}')], "1", datetime.now(UTC))


async def _black_hole_send(timeout: float) -> tuple[str | None, bool]:
    """A send to a loopback server that accepts and never answers; the send's error and
    whether the server then saw its connection closed by the sink."""
    closed = asyncio.Event()

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(4096):  # the CONNECT packet, never answered
            pass
        closed.set()
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = SinkConfig("mqtt", f"mqtt://127.0.0.1:{port}", {"topic": "t"}, {}, True, timeout)
    sink = MqttSink(config, 1)
    try:
        result = await sink.send(outgoing())
        try:  # the client's connect task, had it lived on, times out after ``timeout`` too
            async with asyncio.timeout(max(5.0, 4 * timeout)):
                await closed.wait()
        except TimeoutError:
            pass
        await sink.aclose()
    finally:
        server.close()
        await server.wait_closed()
    return result.error, closed.is_set()


def test_a_broker_that_never_answers_leaves_no_task_and_no_socket(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Regression: the send's timeout left aiomqtt's connect task running, which logged
    "Task exception was never retrieved ... Operation timed out" and kept its socket."""
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        error, closed = asyncio.run(_black_hole_send(0.5))
        gc.collect()  # an unretrieved task's exception is reported when it is collected
    assert error == "timeout"
    assert closed, "the sink's connection to the silent broker stayed open"
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


async def _closing_send() -> str | None:
    """A send to a loopback server that reads the CONNECT and closes the connection (a FIN,
    no reset, and no error the MQTT client logs): the send's error."""

    async def close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)  # the CONNECT packet, read: the close is no reset
        writer.close()

    server = await asyncio.start_server(close, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = SinkConfig("mqtt", f"mqtt://127.0.0.1:{port}", {"topic": "t"}, {}, True, 30)
    sink = MqttSink(config, 1)
    try:
        return (await sink.send(outgoing())).error
    finally:
        await sink.aclose()
        server.close()
        await server.wait_closed()


def test_a_broker_that_closes_before_its_connack_fails_the_send_with_that() -> None:
    """Regression: aiomqtt ignores a loss before the CONNACK, and a broker that closed the
    connection without a reset (one going away) failed a send only at its timeout."""
    assert asyncio.run(_closing_send()) == (
        "ConnectionError: the connection closed before the broker's CONNACK"
    )
