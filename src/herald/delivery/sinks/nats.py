"""The NATS JetStream sink: each message a JetStream publish, counted once its PubAck came.

``Nats-Msg-Id`` is the event's id (``first-last`` for a batch), so a stream with
duplicate detection stores a re-sent message once; a replay's messages carry the replay's
id too (``r7-...``): the tenant asked for them again.
"""

from __future__ import annotations

import asyncio
import logging

from nats.aio.client import Client
from nats.js import JetStreamContext

from herald.delivery.sinks.base import BrokerSink, Message, Outgoing, SinkConfig, messages

log = logging.getLogger("herald.delivery")


async def _quiet(error: Exception) -> None:
    log.debug("delivery: nats: %s", type(error).__name__)  # the send reports it


class NatsSink(BrokerSink):
    def __init__(self, config: SinkConfig) -> None:
        super().__init__(config)
        self._client: Client | None = None
        self._js: JetStreamContext | None = None

    def _alive(self) -> bool:
        return self._client is not None and self._client.is_connected

    async def _connect(self, host: str, port: int) -> None:
        tls = self.config.tls_context()
        scheme = "tls" if tls else "nats"
        credentials = self.config.credentials
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"  # host: the address
        # Kept before it connects, so that _disconnect closes a connect that fails: nats-py
        # leaves the socket of a failed handshake open (a broker that closes at once, as one
        # going away does; a refused login or certificate), without reconnecting to close it.
        client = self._client = Client()
        await client.connect(
            servers=[f"{scheme}://{netloc}"],
            user=credentials.get("username"),
            password=credentials.get("password"),
            token=credentials.get("token"),
            tls=tls,
            tls_hostname=self.config.host if tls else None,
            allow_reconnect=False,  # the sink reconnects, after the worker's backoff
            connect_timeout=max(int(self.config.timeout), 1),
            error_cb=_quiet,
            name="herald",
        )
        self._js = client.jetstream(timeout=self.config.timeout)

    async def _publish(self, out: Outgoing) -> str:
        assert self._js is not None
        js = self._js
        sent = messages(out, self.config.settings["subject"])
        prefix = f"r{out.replay_id}-" if out.replay_id is not None else ""
        acks = await asyncio.gather(
            *(js.publish(m.target, m.body, headers=_headers(m, prefix)) for m in sent)
        )
        stored = sum(not ack.duplicate for ack in acks)
        return f"PubAck from stream {acks[-1].stream} for {len(sent)} ({stored} new)"

    async def _disconnect(self) -> None:
        client, self._client, self._js = self._client, None, None
        if client is not None and not client.is_closed:
            await client.close()


def _headers(message: Message, prefix: str) -> dict[str, str]:
    ids = message.event_ids
    msg_id = str(ids[0]) if len(ids) == 1 else f"{ids[0]}-{ids[-1]}"
    return {"Nats-Msg-Id": prefix + msg_id, "Content-Type": message.content_type}
