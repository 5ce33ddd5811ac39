"""The AMQP 0-9-1 sink (RabbitMQ): persistent messages, ``mandatory`` on, publisher
confirms. A message counts once the broker confirmed it; one it returns as unroutable (no
queue bound for its routing key) is a failure, retried like any other."""

from __future__ import annotations

import asyncio
from urllib.parse import unquote, urlsplit

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from aio_pika.connection import make_url

from herald.delivery.sinks.base import BrokerSink, Outgoing, SinkConfig, messages


class AmqpSink(BrokerSink):
    def __init__(self, config: SinkConfig) -> None:
        super().__init__(config)
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None

    def _alive(self) -> bool:
        channel = self._channel
        return channel is not None and not channel.is_closed

    async def _connect(self, host: str, port: int) -> None:
        tls = self.config.tls_context()
        credentials = self.config.credentials
        virtualhost = unquote(urlsplit(self.config.url).path[1:]) or "/"
        url = make_url(
            host=host,
            port=port,
            login=credentials.get("username", "guest"),
            password=credentials.get("password", "guest"),
            virtualhost=virtualhost,
            ssl=tls is not None,
        )
        # Kept before it connects, so that a connect that fails (a refused login, a lost
        # connection, the send's timeout) is closed by _disconnect like an open one:
        # aio_pika.connect drops such a connection unclosed, and its __del__ schedules a
        # close nobody awaits (on whatever thread collects it).
        self._connection = aio_pika.Connection(
            url, ssl_context=tls, client_properties={"connection_name": "herald"}
        )
        await self._connection.connect(timeout=self.config.timeout)
        self._channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        name = self.config.settings["exchange"]
        self._exchange = (
            await self._channel.get_exchange(name, ensure=False)
            if name
            else self._channel.default_exchange
        )

    async def _publish(self, out: Outgoing) -> str:
        assert self._exchange is not None
        exchange = self._exchange
        sent = messages(out, self.config.settings["routing_key"])
        await asyncio.gather(
            *(
                exchange.publish(
                    aio_pika.Message(
                        m.body,
                        content_type=m.content_type,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        message_id=_message_id(m.event_ids, out.replay_id),
                        app_id="herald",
                    ),
                    routing_key=m.target,
                    mandatory=True,
                )
                for m in sent
            )
        )
        return f"basic.ack for {len(sent)} message{'s' if len(sent) != 1 else ''}"

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        self._channel = self._exchange = None
        if connection is not None and not connection.is_closed:
            await connection.close()


def _message_id(event_ids: tuple[int, ...], replay_id: int | None) -> str:
    msg_id = str(event_ids[0]) if len(event_ids) == 1 else f"{event_ids[0]}-{event_ids[-1]}"
    return f"r{replay_id}-{msg_id}" if replay_id is not None else msg_id
