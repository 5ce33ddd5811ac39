"""The MQTT sink: QoS 1 publishes (retain off), each counted once the broker's PUBACK came."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any

import aiomqtt

from herald.delivery.sinks.base import BrokerSink, Outgoing, SinkConfig, messages


class MqttSink(BrokerSink):
    def __init__(self, config: SinkConfig, handler_id: int) -> None:
        super().__init__(config)
        self._client_id = f"herald-h{handler_id}-{secrets.token_hex(4)}"
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: aiomqtt.Client | None = None

    async def _connect(self, host: str, port: int) -> None:
        tls = self.config.tls_context()
        errors = _Errors(asyncio.get_running_loop())
        client = aiomqtt.Client(
            host,
            port,
            username=self.config.credentials.get("username"),
            password=self.config.credentials.get("password"),
            identifier=self._client_id,
            timeout=self.config.timeout,
            tls_context=tls,
            max_inflight_messages=1000,
            logger=errors.logger,
        )
        errors.watch(client)
        self._stack = contextlib.AsyncExitStack()
        entering = asyncio.ensure_future(self._stack.enter_async_context(client))
        try:
            await asyncio.wait((entering, errors.first), return_when=asyncio.FIRST_COMPLETED)
            if not entering.done():  # the connection was lost before the broker's CONNACK
                raise ConnectionError(errors.first.result())
            self._client = entering.result()
        finally:  # refused, lost, timed out, or the send's timeout fired (a cancel)
            if self._client is None:
                await _abandon(entering, client)

    async def _publish(self, out: Outgoing) -> str:
        assert self._client is not None
        client = self._client
        sent = messages(out, self.config.settings["topic"])
        # published in order on one connection (MQTT keeps their order); all acked to count
        await asyncio.gather(*(client.publish(m.target, m.body, qos=1, retain=False) for m in sent))
        return f"PUBACK for {len(sent)} message{'s' if len(sent) != 1 else ''}"

    async def _disconnect(self) -> None:
        stack, client = self._stack, self._client
        self._stack = self._client = None
        try:
            if stack is not None:
                await stack.aclose()
        finally:
            if client is not None:
                lost = _lost(client)
                if lost.done() and not lost.cancelled():
                    lost.exception()  # read: asyncio logs an error never retrieved


def _lost(client: aiomqtt.Client) -> asyncio.Future[None]:
    """Done once the client's connection is gone; its error if the broker's side went
    (aiomqtt has no public accessor). Leaving, aiomqtt returns without reading that error,
    and asyncio logs it ("Future exception was never retrieved") when the future is
    collected, in whichever thread or test that is."""
    return client._disconnected


async def _abandon(entering: asyncio.Future[aiomqtt.Client], client: aiomqtt.Client) -> None:
    """Cancel a connect that has not finished, wait for it, and close what it opened.

    aiomqtt closes no socket when its connect is cancelled, nor one that its connect thread
    opens after: a CONNACK coming late would leave a connection nobody closes. A connect
    that won the race completed the exit stack: the sink's disconnect closes it.
    """
    entering.cancel()
    await asyncio.wait((entering,))  # not ``await``: a cancel of this task stays its own
    if not entering.cancelled() and entering.exception() is None:
        return  # retrieved either way: no "Task exception was never retrieved"
    paho = client._client  # aiomqtt has no public close for a half-open connection
    loop = asyncio.get_running_loop()

    def close_late(*_: object) -> None:  # a socket the connect thread opens from now on
        loop.call_soon_threadsafe(paho._sock_close)

    paho.on_socket_open = close_late
    paho._sock_close()


class _Errors(logging.Handler):
    """The errors the MQTT client logs, the first of them as a future, and the loss of its
    connection. A connection the broker closes before its CONNACK (a TLS 1.3 broker refusing
    the client's certificate does so just after the handshake; a broker going away, at once)
    is only logged, or not even that: aiomqtt's connect would wait for its timeout."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(logging.ERROR)
        self._loop = loop
        self.first: asyncio.Future[str] = loop.create_future()
        self.logger = logging.Logger("herald.delivery.mqtt", logging.ERROR)  # of no hierarchy
        self.logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self._loop.call_soon_threadsafe(self._set, record.getMessage()[:300])

    def watch(self, client: aiomqtt.Client) -> None:
        """Report the loss of ``client``'s connection too, after the error logged for it if
        any (both reach the loop in order): aiomqtt ignores a loss before the CONNACK."""
        paho = client._client  # aiomqtt tells nothing of a loss before it is connected
        then = paho.on_disconnect

        def on_disconnect(*args: Any, **kwargs: Any) -> None:
            if not self._loop.is_closed():
                lost = "the connection closed before the broker's CONNACK"
                self._loop.call_soon_threadsafe(self._set, lost)
            if then is not None:
                then(*args, **kwargs)

        paho.on_disconnect = on_disconnect

    def _set(self, message: str) -> None:
        if not self.first.done():
            self.first.set_result(message)
