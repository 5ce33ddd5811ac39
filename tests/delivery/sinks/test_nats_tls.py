"""Client certificates (mTLS) to NATS JetStream: a throwaway nats-server on loopback with
``verify: true``, Herald's app in process (each backend) publishing through ``tls://`` with
the handler's certificate; the stream shows what was stored."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from functools import partial
from typing import Any

import httpx
import nats
import orjson
import pytest
from nats.js.api import StreamConfig

from tests.delivery.sinks.common import (
    assert_pems_never_shown,
    create,
    errors_of,
    eventually,
    post_events,
    unique,
)
from tests.delivery.sinks.tls_brokers import TlsBroker, nats_server
from tests.support.inproc import InProcessHerald


@pytest.fixture(scope="module")
def tls_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    with nats_server(tmp_path_factory.mktemp("nats")) as broker:
        yield broker


async def _in_stream(broker: TlsBroker, name: str, subjects: list[str] | None) -> list[Any]:
    """The subjects and records of stream ``name`` (created first with ``subjects``)."""
    context = ssl.create_default_context(cafile=str(broker.ca_file))
    context.load_cert_chain(*broker.client_files("reader"))
    client = await nats.connect(f"tls://127.0.0.1:{broker.port}", tls=context)
    try:
        js = client.jetstream()
        if subjects:
            await js.add_stream(StreamConfig(name=name, subjects=subjects))
        found = []
        for seq in range(1, (await js.stream_info(name)).state.last_seq + 1):
            message = await js.get_msg(name, seq)
            found.append((message.subject, orjson.loads(message.data or b"")))
        return found
    finally:
        await client.close()


def test_a_client_certificate_publishes_and_none_is_refused(
    herald: InProcessHerald, api: httpx.Client, tls_nats: TlsBroker
) -> None:
    name = unique("herald").replace("-", "_")
    asyncio.run(_in_stream(tls_nats, name, [f"{name}.>"]))
    url = f"tls://127.0.0.1:{tls_nats.port}"
    pair = tls_nats.ca.issue("herald")
    ca = {"ca_cert": tls_nats.ca.pem}
    handler = create(
        api,
        type="nats",
        url=url,
        settings={"subject": name + ".good.{event_type}", **ca},
        credentials={"client_cert": pair.cert, "client_key": pair.key},
    )
    without = create(api, type="nats", url=url, settings={"subject": name + ".none", **ca})

    sent = post_events(api, 10)

    def stored() -> list[Any]:
        return asyncio.run(_in_stream(tls_nats, name, None))

    eventually(lambda: set(sent) <= {record["id"] for _, record in stored()}, what="the events")
    assert list(dict.fromkeys(record["id"] for _, record in stored())) == sent  # in order
    # nats-py reports the refusal as a lost connection; the broker says why
    assert eventually(partial(errors_of, api, without["id"]), what="a refused attempt")
    assert "client didn't provide a certificate" in tls_nats.log()
    assert {subject for subject, _ in stored()} == {f"{name}.good.10001"}  # none without
    tested = api.post(f"/event_handler/{handler['id']}/test").json()
    assert tested["outcome"] == "delivered" and "PubAck" in tested["detail"]
    assert_pems_never_shown(herald, api, [handler["id"], without["id"]], [pair])
