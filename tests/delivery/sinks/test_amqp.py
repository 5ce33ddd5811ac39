"""The AMQP sink end to end: Herald's app in process (each backend) publishing to the
machine's RabbitMQ through a loopback proxy; a queue bound to the exchange shows it all. A
real ``herald serve`` for the kill."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import httpx
import orjson
import pytest

from tests.delivery.sinks.common import (
    PASSWORD,
    assert_never_shown,
    attempts,
    create,
    eventually,
    first_seen,
    post_events,
    replay,
    unique,
)
from tests.delivery.sinks.proxy import proxy
from tests.support.inproc import InProcessHerald
from tests.support.server import HeraldServer

BROKER_PORT = 5672
URL = f"amqp://guest:guest@127.0.0.1:{BROKER_PORT}/"


@dataclass
class Queue:
    """A queue bound to a test's exchange; ``take()`` drains what arrived so far."""

    exchange: str
    name: str
    got: list[tuple[str, dict[str, Any], aio_pika.abc.AbstractIncomingMessage]] = field(
        default_factory=list
    )

    def take(self) -> list[int]:
        asyncio.run(self._drain())
        return [int(record["id"]) for _, record, _ in self.got]

    async def _drain(self) -> None:
        connection = await aio_pika.connect(URL)
        try:
            channel = await connection.channel()
            queue = await channel.get_queue(self.name)
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                self.got.append((message.routing_key or "", orjson.loads(message.body), message))
        finally:
            await connection.close()


async def _declare(exchange: str, queue: str | None, routing: str = "#") -> None:
    connection = await aio_pika.connect(URL)
    try:
        channel = await connection.channel()
        declared = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC)
        if queue is not None:
            bound = await channel.declare_queue(queue, durable=True)
            await bound.bind(declared, routing)
    finally:
        await connection.close()


async def _delete(exchange: str, queue: str) -> None:
    connection = await aio_pika.connect(URL)
    try:
        channel = await connection.channel()
        await channel.queue_delete(queue)
        await channel.exchange_delete(exchange)
    finally:
        await connection.close()


@pytest.fixture
def queue() -> Iterator[Queue]:
    name = unique("herald-test")
    bound = Queue(name, name + "-q")
    asyncio.run(_declare(bound.exchange, bound.name))
    try:
        yield bound
    finally:
        asyncio.run(_delete(bound.exchange, bound.name))


def test_events_are_confirmed_in_order_across_a_cut_and_replay(
    herald: InProcessHerald, api: httpx.Client, queue: Queue
) -> None:
    with proxy(BROKER_PORT) as broker:
        handler = create(
            api,
            type="amqp",
            url=f"amqp://{broker.url_host}/",
            settings={
                "exchange": queue.exchange,
                "routing_key": "herald.{organisation_id}.{event_type}",
            },
            credentials={"username": "guest", "password": "guest"},
        )
        first = post_events(api, 5)
        eventually(lambda: len(queue.take()) >= 5, what="the first events")
        organisation = handler["organisation"]["id"]
        assert queue.take() == first
        assert {key for key, _, _ in queue.got} == {f"herald.{organisation}.10001"}
        message = queue.got[0][2]
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.message_id == str(first[0])
        assert message.content_type == "application/json"

        broker.cut(stay_down=True)
        second = post_events(api, 5, code=10002)
        eventually(
            lambda: any(a["outcome"] == "retry" for a in attempts(api, handler["id"])),
            what="a failed attempt while the broker is away",
        )
        broker.up()
        eventually(lambda: set(second) <= set(queue.take()), what="the events sent meanwhile")
        assert first_seen(queue.take()) == first + second

        count = len(queue.take())
        since = min(e["timestamp"] for e in api.get("/event").json() if e["id"] in first)
        replay(api, handler["id"], since)
        eventually(lambda: len(queue.take()) >= count + 10, what="the replay")
        assert queue.take()[count:] == first + second

        tested = api.post(f"/event_handler/{handler['id']}/test").json()
        assert tested["outcome"] == "delivered" and "basic.ack" in tested["detail"]
        assert_never_shown(herald, api, handler["id"])


def test_an_unroutable_message_fails_until_a_queue_is_bound(api: httpx.Client) -> None:
    exchange = unique("herald-test")
    asyncio.run(_declare(exchange, None))
    bound = Queue(exchange, exchange + "-q")
    try:
        handler = create(
            api,
            type="amqp",
            url=f"amqp://127.0.0.1:{BROKER_PORT}/",
            settings={"exchange": exchange, "routing_key": "events.{severity}"},
            credentials={"username": "guest", "password": PASSWORD},  # a wrong password
        )
        post_events(api, 1)
        eventually(lambda: attempts(api, handler["id"]), what="an attempt")
        assert attempts(api, handler["id"])[0]["outcome"] == "retry"  # refused login
        assert PASSWORD not in api.get(f"/event_handler/{handler['id']}/delivery").text
        patched = api.patch(
            f"/event_handler/{handler['id']}",
            json={"credentials": {"username": "guest", "password": "guest"}},
        )
        assert patched.status_code == 200, patched.text
        eventually(
            lambda: "NO_ROUTE" in str([a["error"] for a in attempts(api, handler["id"])]),
            what="an unroutable return recorded as a failure",
        )
        sent = post_events(api, 2)
        asyncio.run(_declare(exchange, bound.name, "events.*"))
        eventually(lambda: set(sent) <= set(bound.take()), what="delivery once a queue is bound")
    finally:
        asyncio.run(_delete(exchange, bound.name))


def test_a_killed_worker_loses_nothing(
    process: HeraldServer, process_api: httpx.Client, queue: Queue
) -> None:
    create(
        process_api,
        type="amqp",
        url=f"amqp://127.0.0.1:{BROKER_PORT}/",
        settings={"exchange": queue.exchange, "routing_key": "herald.events"},
        credentials={"username": "guest", "password": "guest"},
    )
    sent = post_events(process_api, 10)
    eventually(lambda: queue.take(), what="delivery under way")
    process.kill()  # SIGKILL: no drain, no lease given up
    process.restart()
    sent += post_events(process_api, 10)
    eventually(
        lambda: set(sent) <= set(queue.take()), timeout=30, what="every event after the kill"
    )
    assert first_seen(queue.take()) == sent
