"""The NATS JetStream sink end to end: Herald's app in process (each backend) publishing to
the machine's nats-server through a loopback proxy; the stream shows what was stored. A real
``herald serve`` for the kill."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import nats
import orjson
import pytest
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError

from tests.delivery.sinks.common import (
    PASSWORD,
    assert_never_shown,
    attempts,
    create,
    eventually,
    post_events,
    replay,
    unique,
)
from tests.delivery.sinks.proxy import proxy
from tests.support.inproc import InProcessHerald
from tests.support.server import HeraldServer

BROKER_PORT = 4222
Stored = tuple[str, dict[str, Any], dict[str, str]]  # subject, record, headers


async def _stream(name: str, subjects: list[str] | None) -> None:
    client = await nats.connect(f"nats://127.0.0.1:{BROKER_PORT}")
    try:
        js = client.jetstream()
        if subjects is None:
            await js.delete_stream(name)
        else:
            await js.add_stream(StreamConfig(name=name, subjects=subjects, duplicate_window=120))
    finally:
        await client.close()


async def _stored(name: str) -> list[Stored]:
    client = await nats.connect(f"nats://127.0.0.1:{BROKER_PORT}")
    try:
        js = client.jetstream()
        info = await js.stream_info(name)
        found = []
        for seq in range(1, info.state.last_seq + 1):
            try:
                message = await js.get_msg(name, seq)
            except NotFoundError:
                continue
            found.append(
                (message.subject or "", orjson.loads(message.data or b"{}"), message.headers or {})
            )
        return found
    finally:
        await client.close()


def stored(name: str) -> list[Stored]:
    return asyncio.run(_stored(name))


@pytest.fixture
def stream() -> Iterator[tuple[str, str]]:
    """A JetStream stream of its own (deleted after): its name and subject prefix."""
    name = unique("herald-test").replace("-", "_")
    asyncio.run(_stream(name, [f"{name}.>"]))
    try:
        yield name, name
    finally:
        asyncio.run(_stream(name, None))


def ids_of(found: list[Stored]) -> list[int]:
    return [int(record["id"]) for _, record, _ in found]


def test_events_are_stored_once_in_order_across_a_cut_and_replay(
    herald: InProcessHerald, api: httpx.Client, stream: tuple[str, str]
) -> None:
    name, base = stream
    with proxy(BROKER_PORT) as broker:
        handler = create(
            api,
            type="nats",
            url=f"nats://{broker.url_host}",
            settings={"subject": base + ".{organisation_id}.{event_type}"},
            credentials={"username": "herald", "password": PASSWORD},
        )
        first = post_events(api, 5)
        eventually(lambda: len(stored(name)) >= 5, what="the first events")
        found = stored(name)
        organisation = handler["organisation"]["id"]
        assert ids_of(found) == first
        assert {subject for subject, _, _ in found} == {f"{base}.{organisation}.10001"}
        assert [h["Nats-Msg-Id"] for _, _, h in found] == [str(i) for i in first]

        broker.cut(stay_down=True)
        second = post_events(api, 5, code=10002)
        eventually(
            lambda: any(a["outcome"] == "retry" for a in attempts(api, handler["id"])),
            what="a failed attempt while the broker is away",
        )
        broker.up()
        eventually(lambda: len(stored(name)) >= 10, what="the events sent meanwhile")
        assert ids_of(stored(name)) == first + second  # a re-send is stored once

        since = min(e["timestamp"] for e in api.get("/event").json() if e["id"] in first)
        replay(api, handler["id"], since)
        eventually(lambda: len(stored(name)) >= 20, what="the replay")
        replayed = stored(name)[10:]
        assert ids_of(replayed) == first + second
        assert all(h["Nats-Msg-Id"].startswith("r") for _, _, h in replayed)

        tested = api.post(f"/event_handler/{handler['id']}/test").json()
        assert tested["outcome"] == "delivered" and "PubAck" in tested["detail"]
        assert_never_shown(herald, api, handler["id"])


def test_a_subject_no_stream_takes_is_retried_until_one_does(api: httpx.Client) -> None:
    name = unique("herald-test").replace("-", "_")
    handler = create(
        api,
        type="nats",
        url=f"nats://127.0.0.1:{BROKER_PORT}",
        settings={"subject": name + ".events"},
        format="cloudevents",
    )
    sent = post_events(api, 3)
    eventually(
        lambda: [a for a in attempts(api, handler["id"]) if a["outcome"] == "retry"],
        what="failed attempts: no stream stores the subject",
    )
    asyncio.run(_stream(name, [f"{name}.>"]))
    try:
        eventually(lambda: len(stored(name)) >= 3, what="delivery once the stream exists")
        assert [int(record["id"]) for _, record, _ in stored(name)] == sent
        assert all(record["specversion"] == "1.0" for _, record, _ in stored(name))
    finally:
        asyncio.run(_stream(name, None))


def test_a_killed_worker_loses_nothing(
    process: HeraldServer, process_api: httpx.Client, stream: tuple[str, str]
) -> None:
    name, base = stream
    create(
        process_api,
        type="nats",
        url=f"nats://127.0.0.1:{BROKER_PORT}",
        settings={"subject": base + ".e"},
    )
    sent = post_events(process_api, 10)
    eventually(lambda: stored(name), what="delivery under way")
    process.kill()  # SIGKILL: no drain, no lease given up
    process.restart()
    sent += post_events(process_api, 10)
    eventually(lambda: len(stored(name)) >= 20, timeout=30, what="every event after the kill")
    assert ids_of(stored(name)) == sent  # a re-send after the kill is stored once
