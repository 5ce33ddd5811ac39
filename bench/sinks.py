"""Sinks: events/s from the log to MQTT, NATS JetStream, RabbitMQ and an S3-compatible
store, beside a raw client loop sending the same bodies with the same acknowledgement to the
same place (QoS 1 PUBACK; JetStream PubAck; publisher confirm with ``mandatory``; the
store's 200 for ``put_object`` of the same gzip NDJSON objects), and the ingest-to-publish
latency at 1,000 events/s (``bench.sinklatency``).

Herald runs as in production: ``herald serve`` with delivery off and a ``herald worker``.
Herald's rate is over its sending time, from the start of the handler's first attempt to
the end of its last (its attempt log), as the raw loop's starts on a warm connection; the
time from enabling the handler until its cursor (moved only after the broker's ack)
reaches the end of the log is reported beside it. The raw loop runs before and after.
The S3 store is moto in its own process (``bench.s3store``); its CPU time is reported.
"""

from __future__ import annotations

import asyncio
import gzip
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aio_pika
import aiomqtt
import httpx
import nats
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from nats.js.api import StreamConfig
from tests.support.server import HeraldServer

from bench import sinklatency
from bench.common import (
    Mode,
    Result,
    attempt_spans,
    herald_server,
    rate,
    span_seconds,
    wait_caught_up,
)
from bench.delivery import _ingest, worker
from bench.events import document
from bench.s3store import ACCESS_KEY, REGION, SECRET_KEY, Store, s3_store

BATCH = 100
S3_LARGE_EVENTS = 20_000  # at least, for objects of 1000
Publish = Callable[[list[bytes]], Coroutine[Any, Any, float]]
Pack = Callable[[list[bytes], int], list[bytes]]


def json_messages(records: list[bytes], batch: int) -> list[bytes]:
    """The broker messages of a handler's native format: a record, or an array of them."""
    if batch == 1:
        return records
    return [b"[" + b",".join(records[i : i + batch]) + b"]" for i in range(0, len(records), batch)]


def s3_objects(records: list[bytes], batch: int) -> list[bytes]:
    """The S3 sink's objects: gzip NDJSON, one per batch, compressed as the sink does."""
    return [
        gzip.compress(b"".join(r + b"\n" for r in records[i : i + batch]), compresslevel=6, mtime=0)
        for i in range(0, len(records), batch)
    ]


@dataclass(frozen=True)
class Target:
    """Where a family sends: the handler's spec, the raw loop, how its bodies are made and,
    for S3, the store process whose CPU is watched."""

    spec: dict[str, Any]
    raw: Publish
    pack: Pack = json_messages
    store: Store | None = None


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


async def _s3_loop(store: Store, objects: list[bytes]) -> float:
    config = AioConfig(retries={"total_max_attempts": 1}, s3={"addressing_style": "path"})
    client_context = get_session().create_client(
        "s3",
        endpoint_url=store.url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=config,
    )
    run = uuid.uuid4().hex
    async with client_context as client:

        async def put(key: str, body: bytes) -> None:
            reply = await client.put_object(
                Bucket=store.bucket,
                Key=f"raw/{run}/{key}.ndjson.gz",
                Body=body,
                ContentType="application/x-ndjson",
                ContentEncoding="gzip",
            )
            if reply["ResponseMetadata"]["HTTPStatusCode"] != 200:
                raise RuntimeError(f"raw S3 PUT answered {reply['ResponseMetadata']}")

        await put("warm-up", objects[0])
        started = time.perf_counter()
        for i, body in enumerate(objects):
            await put(str(i), body)
        return time.perf_counter() - started


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


def _throughput(api: httpx.Client, target: Target, events: int, batch: int) -> Result:
    docs = [document(i, organisation_id=1) for i in range(events)]
    body = {
        **target.spec,
        "name": f"bench-{target.spec['type']}-{batch}",
        "batch": {"max_events": batch, "max_wait_ms": 0},
        "enabled": False,
        "organisation_id": 1,
    }
    handler = api.post("/event_handler", json=body)
    handler.raise_for_status()
    handler_id = handler.json()["id"]
    records = _ingest(api, docs)
    packed = time.perf_counter()
    bodies = target.pack(records, batch)
    pack_s = time.perf_counter() - packed
    cpu = target.store.cpu_seconds if target.store else lambda: 0.0
    cpu_0 = cpu()
    raw_before = asyncio.run(target.raw(bodies))
    cpu_1 = cpu()
    started = time.perf_counter()
    api.patch(f"/event_handler/{handler_id}", json={"enabled": True}).raise_for_status()
    wait_caught_up(api, handler_id)
    enable_to_done_s = time.perf_counter() - started
    cpu_2 = cpu()
    api.patch(f"/event_handler/{handler_id}", json={"enabled": False}).raise_for_status()
    raw_after = asyncio.run(target.raw(bodies))
    cpu_3 = cpu()
    spans = attempt_spans(api, handler_id)
    herald_s = span_seconds(spans)
    # the raw loop's warm-up message is not timed; Herald's first attempt also connects
    # (for S3 it creates the client, ~0.5 s): the rate without it is given beside
    warm = spans[1:] or spans
    herald_rate, raw_rate = rate(events, herald_s), rate(events, (raw_before + raw_after) / 2)
    warm_rate = rate(sum(n for _, _, n in warm), span_seconds(warm))
    result: Result = {
        "events": events,
        "batch": batch,
        "enable_to_done_s": round(enable_to_done_s, 3),
        "first_attempt_ms": spans[0][1] - spans[0][0],
        "herald_events_per_s": herald_rate,
        "herald_warm_events_per_s": warm_rate,
        "raw_client_events_per_s": raw_rate,
        "ratio": round(herald_rate / raw_rate, 3),
        "ratio_warm": round(warm_rate / raw_rate, 3),
    }
    if target.store:  # how busy the store was: 1.0 is one core, all moto's GIL allows
        raw_cpu = cpu_1 - cpu_0 + cpu_3 - cpu_2
        result["pack_ms_per_message"] = round(pack_s * 1000 / len(bodies), 3)
        result["store_cpu_per_raw_s"] = round(raw_cpu / (raw_before + raw_after), 3)
        result["store_cpu_per_herald_s"] = round((cpu_2 - cpu_1) / herald_s, 3)
        result["store_cpu_ms_per_message"] = round(raw_cpu * 1000 / (2 * len(bodies)), 3)
    return result


def _broker(
    api: httpx.Client,
    mode: Mode,
    target: Target,
    latency_settings: dict[str, Any],
    subscriber: sinklatency.Subscriber,
) -> Result:
    """Throughput, batched and single; latency through a handler of its own publishing to
    its own topic (a handler just disabled may still send one more batch: not counted)."""
    spec = {**target.spec, "settings": latency_settings}
    return {
        "batched": _throughput(api, target, mode.delivery_events, BATCH),
        "single": _throughput(api, target, mode.delivery_single_events, 1),
        "latency_at_1000_per_s": sinklatency.broker_latency(
            api, spec, subscriber, mode.latency_seconds
        ),
    }


def _s3(api: httpx.Client, mode: Mode, name: str) -> Result:
    with s3_store(name) as store:
        spec = {
            "type": "s3",
            "url": store.url,
            "settings": {"bucket": store.bucket, "region": REGION},
            "credentials": {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY},
        }
        target = Target(spec, lambda b: _s3_loop(store, b), s3_objects, store)
        return {
            "batched": _throughput(api, target, mode.delivery_events, BATCH),
            "batch_1000": _throughput(
                api, target, max(mode.delivery_events, S3_LARGE_EVENTS), 1000
            ),
            "latency_at_1000_per_s": sinklatency.acked_latency(api, spec, mode.latency_seconds),
        }


def sinks_bench(mode: Mode, workdir: Path) -> Result:
    """Throughput to each broker and S3 beside its raw client loop; latency at 1,000/s."""
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
        results["mqtt"] = _broker(
            api,
            mode,
            Target(mqtt, lambda b: _mqtt_loop(name, b)),
            {"topic": f"{name}/latency"},
            partial(sinklatency.mqtt_subscriber, f"{name}/latency"),
        )
        asyncio.run(_nats_stream(name, True))
        try:
            subject = f"{name}.events"
            spec = {
                "type": "nats",
                "url": "nats://127.0.0.1:4222",
                "settings": {"subject": subject},
            }
            results["nats"] = _broker(
                api,
                mode,
                Target(spec, lambda b: _nats_loop(subject, b)),
                {"subject": f"{name}.latency"},
                partial(sinklatency.nats_subscriber, f"{name}.latency"),
            )
        finally:
            asyncio.run(_nats_stream(name, False))
        asyncio.run(_amqp_queue(name, True))
        try:
            settings = {"exchange": name, "routing_key": "events"}
            amqp = {"type": "amqp", "url": "amqp://127.0.0.1:5672/", "settings": settings}
            results["amqp"] = _broker(
                api,
                mode,
                Target(amqp, lambda b: _amqp_loop(name, "events", b)),
                {"exchange": name, "routing_key": "latency"},
                partial(sinklatency.amqp_subscriber, name, "latency"),
            )
        finally:
            asyncio.run(_amqp_queue(name, False))
        results["s3"] = _s3(api, mode, name.replace("_", "-"))
    return results
