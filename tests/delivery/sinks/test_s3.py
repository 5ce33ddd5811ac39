"""The S3 sink end to end: Herald's app in process (each backend) putting gzip NDJSON
objects into moto's S3 server (started here) through a loopback proxy; a real ``herald
serve`` for the kill."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import httpx
import orjson
import pytest
from moto.server import ThreadedMotoServer

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
from tests.support.server import HeraldServer, free_port


@pytest.fixture(scope="module")
def moto_port() -> Iterator[int]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield port
    finally:
        server.stop()


@pytest.fixture
def bucket(moto_port: int) -> Iterator[tuple[Any, str]]:
    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{moto_port}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    name = unique("herald-test")
    s3.create_bucket(Bucket=name)
    try:
        yield s3, name
    finally:
        for key in keys(s3, name):
            s3.delete_object(Bucket=name, Key=key)
        s3.delete_bucket(Bucket=name)
        s3.close()


def keys(s3: Any, bucket: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return [item["Key"] for item in sorted(listed, key=lambda item: item["LastModified"])]


def objects(s3: Any, bucket: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """Each object's key and records, oldest first (by the first event's id)."""
    found = []
    for key in keys(s3, bucket):
        got = s3.get_object(Bucket=bucket, Key=key)
        assert got["ContentEncoding"] == "gzip"
        assert got["ContentType"] == "application/x-ndjson"
        lines = gzip.decompress(got["Body"].read()).splitlines()
        found.append((key, [orjson.loads(line) for line in lines]))
    return sorted(found, key=lambda kept: int(kept[1][0]["id"]))


def ids_in(found: list[tuple[str, list[dict[str, Any]]]]) -> list[int]:
    return [int(record["id"]) for _, records in found for record in records]


def test_batches_become_keyed_objects_across_a_cut_and_replay(
    herald: InProcessHerald, api: httpx.Client, moto_port: int, bucket: tuple[Any, str]
) -> None:
    s3, name = bucket
    with proxy(moto_port) as store:
        handler = create(
            api,
            type="s3",
            url=f"http://{store.url_host}",
            settings={"bucket": name, "region": "us-east-1"},
            credentials={"access_key_id": "herald", "secret_access_key": PASSWORD},
            batch={"max_events": 5, "max_wait_ms": 300},
        )
        first = post_events(api, 5)
        eventually(lambda: ids_in(objects(s3, name)) == first, what="the first object")
        [(key, records)] = objects(s3, name)
        organisation = handler["organisation"]["id"]
        received = datetime.fromisoformat(records[0]["received"]).astimezone(UTC)
        assert key == f"{organisation}/{received:%Y/%m/%d/%H}/{first[0]}-{first[-1]}.ndjson.gz"

        store.cut(stay_down=True)
        second = post_events(api, 5, code=10002)
        eventually(
            lambda: any(a["outcome"] == "retry" for a in attempts(api, handler["id"])),
            what="a failed attempt while the store is away",
        )
        store.up()
        eventually(lambda: set(second) <= set(ids_in(objects(s3, name))), what="the rest")
        assert first_seen(ids_in(objects(s3, name))) == first + second

        before = len(keys(s3, name))
        s3.delete_object(Bucket=name, Key=key)  # the replay writes it again
        since = min(e["timestamp"] for e in api.get("/event").json() if e["id"] in first)
        replay(api, handler["id"], since)
        eventually(lambda: len(keys(s3, name)) >= before, what="the replay")
        assert ids_in(objects(s3, name))[:5] == first

        tested = api.post(f"/event_handler/{handler['id']}/test").json()
        assert tested["outcome"] == "delivered" and "HTTP 200" in tested["detail"]
        assert_never_shown(herald, api, handler["id"])


def test_a_missing_bucket_is_retried_until_it_exists(api: httpx.Client, moto_port: int) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{moto_port}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    name = unique("herald-test")
    try:
        handler = create(
            api,
            type="s3",
            url=f"http://127.0.0.1:{moto_port}",
            settings={"bucket": name},
            format="cloudevents",
        )
        sent = post_events(api, 2)
        eventually(
            lambda: "NoSuchBucket" in str([a["error"] for a in attempts(api, handler["id"])]),
            what="a failed put: no such bucket",
        )
        s3.create_bucket(Bucket=name)
        eventually(lambda: set(sent) <= set(ids_in(objects(s3, name))), what="the objects")
        records = [record for _, kept in objects(s3, name) for record in kept]
        assert all(record["specversion"] == "1.0" for record in records)
    finally:
        for key in keys(s3, name) if name in _buckets(s3) else []:
            s3.delete_object(Bucket=name, Key=key)
        if name in _buckets(s3):
            s3.delete_bucket(Bucket=name)
        s3.close()


def _buckets(s3: Any) -> list[str]:
    return [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_a_killed_worker_loses_nothing(
    process: HeraldServer, process_api: httpx.Client, moto_port: int, bucket: tuple[Any, str]
) -> None:
    s3, name = bucket
    create(
        process_api,
        type="s3",
        url=f"http://127.0.0.1:{moto_port}",
        settings={"bucket": name, "region": "us-east-1"},
        credentials={"access_key_id": "herald", "secret_access_key": PASSWORD},
        batch={"max_events": 5, "max_wait_ms": 300},
    )
    sent = post_events(process_api, 10)
    eventually(lambda: objects(s3, name), what="delivery under way")
    process.kill()  # SIGKILL: no drain, no lease given up
    process.restart()
    sent += post_events(process_api, 10)
    eventually(lambda: set(sent) <= set(ids_in(objects(s3, name))), timeout=30, what="every event")
    assert first_seen(ids_in(objects(s3, name))) == sent


def test_batches_bounded_by_bytes_lose_nothing(
    api: httpx.Client, moto_port: int, bucket: tuple[Any, str]
) -> None:
    s3, name = bucket
    # A record is ~520 bytes before its description (every record lists endpoint, sim, imsi,
    # user and detail, null if absent): the bound takes two or three of the small ones.
    max_bytes = 2048
    create(
        api,
        type="s3",
        url=f"http://127.0.0.1:{moto_port}",
        settings={"bucket": name},
        batch={"max_events": 1000, "max_wait_ms": 500, "max_bytes": max_bytes},
    )
    # descriptions of 10 to 290 characters, and one event bigger than the bound alone
    lengths = [10 + (i * 70) % 290 for i in range(40)]
    lengths[17] = 3000
    events = [{"event_type": {"id": 10001}, "description": "x" * n} for n in lengths]
    response = api.post("/event", json=events)
    assert response.status_code == 201, response.text
    sent = [event["id"] for event in response.json()]
    eventually(lambda: set(sent) <= set(ids_in(objects(s3, name))), what="every event")

    batches = sorted(  # each object's NDJSON lines, by its first event's id
        (
            gzip.decompress(s3.get_object(Bucket=name, Key=key)["Body"].read()).splitlines(True)
            for key in keys(s3, name)
        ),
        key=lambda lines: int(orjson.loads(lines[0])["id"]),
    )
    assert [int(orjson.loads(line)["id"]) for lines in batches for line in lines] == sent
    sizes = [sum(len(line) for line in lines) for lines in batches]
    for lines, size in zip(batches, sizes, strict=True):
        assert size <= max_bytes or len(lines) == 1  # one event at least, however big
    assert any(len(lines) > 1 for lines in batches)
    big = [lines for lines in batches if orjson.loads(lines[0])["id"] == sent[17]]
    assert len(big) == 1 and len(big[0]) == 1  # the big one went alone
    assert len(big[0][0]) > max_bytes  # and it is bigger than the bound (the case meant)
    # all were in the log together: each batch is cut only where the next event overflows it
    for size, after in zip(sizes, batches[1:], strict=False):
        assert size + len(after[0]) > max_bytes
