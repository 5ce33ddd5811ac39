"""Broker sinks: events/s from the log to MQTT, NATS JetStream and RabbitMQ, beside a raw
client loop publishing the same bodies with the same acknowledgement to the same broker
(QoS 1 PUBACK; JetStream PubAck; publisher confirm with ``mandatory``), batched and single.

Herald runs as in production: ``herald serve`` with delivery off and a ``herald worker``.
Herald's rate is over its sending time, from the start of the handler's first attempt to
the end of its last (its attempt log), as the raw loop's starts on a warm connection; the
time from enabling the handler until its cursor (moved only after the broker's ack)
reaches the end of the log is reported beside it. The raw loop runs before and after.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aio_pika
import aiomqtt
import httpx
import nats
from nats.js.api import StreamConfig
from tests.support.server import HeraldServer

from bench.common import Mode, Result, herald_server, rate, sending_seconds
from bench.delivery import _ingest, worker
from bench.events import document

BATCH = 100
TIMEOUT_S = 600
Publish = Callable[[list[bytes]], Awaitable[float]]


async def _mqtt_loop(topic: str, bodies: list[bytes]) -> float:
    async with aiomqtt.Client("127.0.0.1", 1883) as client:
        await client.publish(topic, bodies[0], qos=1)
        started = time.perf_counter()
        for body in bodies:
            await client.publish(topic, body, qos=1)
        return time.perf_counter() - started


async def _nats_loop(subject: str, bodies: list[bytes]) -> float:
    client = await nats.connect("nats://127.0.0.1:4222")
    try:
        js = client.jetstream()
        await js.publish(subject, bodies[0])
        started = time.perf_counter()
        for i, body in enumerate(bodies):
            await js.publish(subject, body, headers={"Nats-Msg-Id": f"raw-{uuid.uuid4()}-{i}"})
        return time.perf_counter() - started
    finally:
        await client.close()


async def _amqp_loop(exchange: str, key: str, bodies: list[bytes]) -> float:
    connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        target = await channel.get_exchange(exchange, ensure=False)

        async def send(body: bytes) -> None:
            message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            await target.publish(message, routing_key=key, mandatory=True)

        await send(bodies[0])
        started = time.perf_counter()
        for body in bodies:
            await send(body)
        return time.perf_counter() - started
    finally:
        await connection.close()


async def _nats_stream(name: str, create: bool) -> None:
    client = await nats.connect("nats://127.0.0.1:4222")
    try:
        js = client.jetstream()
        if create:
            await js.add_stream(StreamConfig(name=name, subjects=[f"{name}.>"]))
        else:
            await js.delete_stream(name)
    finally:
        await client.close()


async def _amqp_queue(name: str, create: bool) -> None:
    connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
    try:
        channel = await connection.channel()
        if create:
            exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC)
            queue = await channel.declare_queue(name, durable=True)
            await queue.bind(exchange, "#")
        else:
            await channel.queue_delete(name)
            await channel.exchange_delete(name)
    finally:
        await connection.close()


def _wait_delivered(api: httpx.Client, handler_id: int) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        status = api.get(f"/event_handler/{handler_id}/status").json()
        if status["lag_events"] == 0:
            return
        time.sleep(0.2)  # counting the lag costs the server CPU the worker shares
    raise RuntimeError(f"handler {handler_id} did not catch up in time")


def _throughput(
    api: httpx.Client,
    spec: dict[str, Any],
    raw: Publish,
    events: int,
    batch: int,
) -> Result:
    docs = [document(i, organisation_id=1) for i in range(events)]
    body = {
        **spec,
        "name": f"bench-{spec['type']}-{batch}",
        "batch": {"max_events": batch, "max_wait_ms": 0},
        "enabled": False,
        "organisation_id": 1,
    }
    handler = api.post("/event_handler", json=body)
    handler.raise_for_status()
    handler_id = handler.json()["id"]
    bodies = _ingest(api, docs)
    if batch > 1:
        bodies = [b"[" + b",".join(bodies[i : i + batch]) + b"]" for i in range(0, events, batch)]
    raw_before = asyncio.run(raw(bodies))
    started = time.perf_counter()
    api.patch(f"/event_handler/{handler_id}", json={"enabled": True}).raise_for_status()
    _wait_delivered(api, handler_id)
    enable_to_done_s = time.perf_counter() - started
    api.patch(f"/event_handler/{handler_id}", json={"enabled": False}).raise_for_status()
    raw_after = asyncio.run(raw(bodies))
    herald_s = sending_seconds(api, handler_id)
    herald_rate, raw_rate = rate(events, herald_s), rate(events, (raw_before + raw_after) / 2)
    return {
        "events": events,
        "batch": batch,
        "enable_to_done_s": round(enable_to_done_s, 3),
        "herald_events_per_s": herald_rate,
        "raw_client_events_per_s": raw_rate,
        "ratio": round(herald_rate / raw_rate, 3),
    }


def _family(api: httpx.Client, mode: Mode, spec: dict[str, Any], raw: Publish) -> dict[str, Result]:
    return {
        "batched": _throughput(api, spec, raw, mode.delivery_events, BATCH),
        "single": _throughput(api, spec, raw, mode.delivery_single_events, 1),
    }


def sinks_bench(mode: Mode, workdir: Path) -> Result:
    """Batched and single throughput to each broker, beside its raw client loop."""
    env = {
        "HERALD_DELIVERY_ENABLED": "false",  # delivery runs in its own worker process
        "HERALD_ALLOW_PRIVATE_TARGETS": "true",  # the brokers are on loopback
        "HERALD_RATE_LIMIT_PER_SECOND": "0",
    }
    name = f"herald_bench_{uuid.uuid4().hex[:8]}"
    results: Result = {}
    server: HeraldServer
    with (
        herald_server(workdir / "sinks", HERALD_SQLITE_SYNCHRONOUS="FULL", **env) as server,
        worker(server),
        server.client(server.admin_token) as api,
    ):
        mqtt = {"type": "mqtt", "url": "mqtt://127.0.0.1:1883", "settings": {"topic": name}}
        results["mqtt"] = _family(api, mode, mqtt, lambda b: _mqtt_loop(name, b))
        asyncio.run(_nats_stream(name, True))
        try:
            subject = {"subject": f"{name}.events"}
            nats_spec = {"type": "nats", "url": "nats://127.0.0.1:4222", "settings": subject}
            results["nats"] = _family(
                api, mode, nats_spec, lambda b: _nats_loop(f"{name}.events", b)
            )
        finally:
            asyncio.run(_nats_stream(name, False))
        asyncio.run(_amqp_queue(name, True))
        try:
            settings = {"exchange": name, "routing_key": "events"}
            amqp = {"type": "amqp", "url": "amqp://127.0.0.1:5672/", "settings": settings}
            results["amqp"] = _family(api, mode, amqp, lambda b: _amqp_loop(name, "events", b))
        finally:
            asyncio.run(_amqp_queue(name, False))
    return results
