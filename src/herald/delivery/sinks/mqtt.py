"""The MQTT sink: QoS 1 publishes (retain off), each counted once the broker's PUBACK came."""

from __future__ import annotations

import asyncio
import contextlib
import secrets

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
        client = aiomqtt.Client(
            host,
            port,
            username=self.config.credentials.get("username"),
            password=self.config.credentials.get("password"),
            identifier=self._client_id,
            timeout=self.config.timeout,
            tls_context=tls,
            max_inflight_messages=1000,
        )
        self._stack = contextlib.AsyncExitStack()
        self._client = await self._stack.enter_async_context(client)

    async def _publish(self, out: Outgoing) -> str:
        assert self._client is not None
        client = self._client
        sent = messages(out, self.config.settings["topic"])
        # published in order on one connection (MQTT keeps their order); all acked to count
        await asyncio.gather(*(client.publish(m.target, m.body, qos=1, retain=False) for m in sent))
        return f"PUBACK for {len(sent)} message{'s' if len(sent) != 1 else ''}"

    async def _disconnect(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()
