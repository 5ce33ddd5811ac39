"""Ingest-to-publish latency of the broker sinks at 1,000 events/s offered.

Events go to ``POST /event`` as 50 every 50 ms, each carrying the producer's wall clock in
``detail.sent_ms`` (and the run's tag, so earlier runs' messages are not counted). For
MQTT, NATS JetStream and AMQP a subscriber on the broker (an aiomqtt QoS 1 subscription,
a JetStream ordered push consumer delivering new messages, a server-named queue bound to
the exchange) records its arrival time minus ``sent_ms`` for every event. An S3 store has
no subscriber: there the time is to the end of the PUT the store answered 200 (the
handler's attempt log, written by the worker on the same machine's clock). Once the
handler's cursor is at the end of the log, an event that never arrived (or was never
acknowledged) is counted as lost, not waited for.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Any

import aio_pika
import aiomqtt
import httpx
import nats
import orjson
from aio_pika.abc import AbstractIncomingMessage
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from bench.common import Result, attempts, percentiles, wait_caught_up
from bench.events import document
from herald.timefmt import parse_timestamp, to_ms

RATE = 1000  # events/s
TICK_S = 0.05  # a request of 50 events every 50 ms
BATCH = {"max_events": 100, "max_wait_ms": 0}  # as a user wanting low latency sets it
ARRIVAL_GRACE_S = 10
OnMessage = Callable[[bytes], None]
Subscriber = Callable[[OnMessage], AbstractAsyncContextManager[None]]


class Arrivals:
    """Arrival minus sent, in ms, of the run's events in each message (a record, or an array
    of them), by event id: a copy sent again (at least once) counts once, at its first."""

    def __init__(self, run: str) -> None:
        self.run = run
        self.latencies_ms: dict[int, float] = {}

    def add(self, body: bytes) -> None:
        now = time.time() * 1000
        document = orjson.loads(body)
        for record in document if isinstance(document, list) else [document]:
            detail = record.get("detail") or {}
            if detail.get("run") == self.run:
                self.latencies_ms.setdefault(int(record["id"]), now - detail["sent_ms"])


def offer(api: httpx.Client, run: str, seconds: float) -> tuple[dict[int, float], float]:
    """Post events at ``RATE`` for ``seconds``; when each was sent (by its id, in ms of
    wall clock) and the rate achieved."""
    per_tick = int(RATE * TICK_S)
    ticks = int(seconds / TICK_S)
    sent: dict[int, float] = {}
    started = time.perf_counter()
    for tick in range(ticks):
        time.sleep(max(0.0, started + tick * TICK_S - time.perf_counter()))
        now = time.time() * 1000
        docs = [document(tick * per_tick + k, organisation_id=1) for k in range(per_tick)]
        for doc in docs:
            doc["detail"] = {"sent_ms": now, "run": run}
        reply = api.post("/event", content=orjson.dumps(docs))
        reply.raise_for_status()
        sent.update((int(record["id"]), now) for record in reply.json())
    return sent, ticks * per_tick / (time.perf_counter() - started)


def _create(api: httpx.Client, spec: dict[str, Any]) -> int:
    body = {**spec, "name": f"bench-{spec['type']}-latency", "batch": BATCH, "organisation_id": 1}
    reply = api.post("/event_handler", json=body)
    reply.raise_for_status()
    handler_id: int = reply.json()["id"]
    return handler_id


def _disable(api: httpx.Client, handler_id: int) -> None:
    api.patch(f"/event_handler/{handler_id}", json={"enabled": False}).raise_for_status()


def _result(achieved: float, latencies_ms: list[float], lost: int, unsent: int) -> Result:
    """The percentiles; the events that never arrived once the handler's cursor was at the
    end of the log, and of those, the ones no delivered attempt holds (the handler passed
    them without sending: at-least-once broken)."""
    return {
        "offered_events_per_s": round(achieved, 1),
        "batch": BATCH,
        **percentiles(latencies_ms),
        "lost_events": lost,
        "unsent_events": unsent,
    }


def broker_latency(
    api: httpx.Client, spec: dict[str, Any], subscriber: Subscriber, seconds: float
) -> Result:
    """p50/p99 from ``POST /event`` to a subscriber on the broker, at ``RATE``."""
    return asyncio.run(_broker_latency(api, spec, subscriber, seconds))


async def _broker_latency(
    api: httpx.Client, spec: dict[str, Any], subscriber: Subscriber, seconds: float
) -> Result:
    arrivals = Arrivals(uuid.uuid4().hex)
    async with subscriber(arrivals.add):
        handler_id = _create(api, spec)
        try:
            # the posting runs in a thread: the subscriber's loop stays free to take arrivals
            sent, achieved = await asyncio.to_thread(offer, api, arrivals.run, seconds)
            await asyncio.to_thread(wait_caught_up, api, handler_id)
            deadline = time.monotonic() + ARRIVAL_GRACE_S  # acked, so on its way to us
            while len(arrivals.latencies_ms) < len(sent) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            _disable(api, handler_id)
    missing = sent.keys() - arrivals.latencies_ms.keys()
    unsent = len(missing - _acked_ms(api, handler_id).keys()) if missing else 0
    return _result(achieved, list(arrivals.latencies_ms.values()), len(missing), unsent)


def acked_latency(api: httpx.Client, spec: dict[str, Any], seconds: float) -> Result:
    """p50/p99 from ``POST /event`` to the end of the acknowledged send, at ``RATE``: for a
    store without subscribers (S3)."""
    handler_id = _create(api, spec)
    try:
        sent, achieved = offer(api, uuid.uuid4().hex, seconds)
        wait_caught_up(api, handler_id)
        acked = _acked_ms(api, handler_id)
    finally:
        _disable(api, handler_id)
    latencies = [acked[event_id] - at for event_id, at in sent.items() if event_id in acked]
    unsent = len(sent.keys() - acked.keys())
    return _result(achieved, latencies, unsent, unsent)


def _acked_ms(api: httpx.Client, handler_id: int) -> dict[int, float]:
    """When each event's send ended with the broker's ack, from the attempt log."""
    acked: dict[int, float] = {}
    for attempt in attempts(api, handler_id):
        if attempt["outcome"] == "delivered":
            end = to_ms(parse_timestamp(attempt["time"])) + attempt["latency_ms"]
            acked.update((event_id, end) for event_id in attempt["event_ids"])
    return acked


@asynccontextmanager
async def mqtt_subscriber(topic: str, on_message: OnMessage) -> AsyncIterator[None]:
    """A QoS 1 subscription to ``topic`` on the machine's Mosquitto."""
    async with aiomqtt.Client("127.0.0.1", 1883) as client:
        await client.subscribe(topic, qos=1)

        async def pump() -> None:
            async for message in client.messages:
                assert isinstance(message.payload, bytes | bytearray)
                on_message(bytes(message.payload))

        task = asyncio.create_task(pump())
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task


@asynccontextmanager
async def nats_subscriber(subject: str, on_message: OnMessage) -> AsyncIterator[None]:
    """A JetStream ordered push consumer of the new messages on ``subject``."""
    client = await nats.connect("nats://127.0.0.1:4222")
    try:

        async def arrived(message: Msg) -> None:
            on_message(message.data)

        js = client.jetstream()
        subscription = await js.subscribe(
            subject, cb=arrived, ordered_consumer=True, deliver_policy=DeliverPolicy.NEW
        )
        try:
            yield
        finally:
            await subscription.unsubscribe()
    finally:
        await client.close()


@asynccontextmanager
async def amqp_subscriber(exchange: str, key: str, on_message: OnMessage) -> AsyncIterator[None]:
    """A consumer of a server-named queue bound to ``exchange`` for ``key``."""
    connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(await channel.get_exchange(exchange, ensure=False), key)

        async def arrived(message: AbstractIncomingMessage) -> None:
            on_message(message.body)

        await queue.consume(arrived, no_ack=True)
        yield
    finally:
        await connection.close()
