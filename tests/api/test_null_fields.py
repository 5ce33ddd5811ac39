"""Null fields served as the providers serve them (issue #34, point 2): an event without an
endpoint, SIM, IMSI, user or detail carries those keys as ``null`` on every read path of the
app served in process (list, one event, the live stream, a handler's native format), on each
backend, and so does an event stored before Herald kept them (no migration)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from herald.catalog import load_catalog
from herald.ids import IdGenerator
from herald.model import (
    NULL_WHEN_ABSENT,
    EndpointRef,
    EventIn,
    NewEvent,
    OrganisationRef,
    TypeRef,
    build_event,
)
from herald.store import open_store
from herald.timefmt import now_ms
from tests.api.test_stream import Stream
from tests.delivery.receiver import receiving, start_delivery_in_process, tenant
from tests.support.herald import Herald

CODE = 10001


@pytest.fixture
def herald(tmp_path: Path, database_url: str) -> Iterator[Herald]:
    server = start_delivery_in_process(tmp_path / "herald", database_url)  # once per backend
    try:
        yield server
    finally:
        server.stop()


def _stored_before(server: Herald, organisation: int, monkeypatch: pytest.MonkeyPatch) -> int:
    """An event written as Herald stored them before: no null keys at all. Its id."""
    built = build_event(
        EventIn(event_type=TypeRef(id=CODE), description="old", endpoint=EndpointRef(id=7)),
        organisation=OrganisationRef(id=organisation, name="Acme IoT"),
        catalog=load_catalog(),
        received_ms=now_ms(),
        internal=False,
    )
    assert isinstance(built, NewEvent)
    for key in ("sim", "imsi", "user", "detail"):
        del built.record[key]
    built.body = None  # serialised at append, from the record as changed
    store = open_store(server.database_url)
    try:
        (event_id,) = IdGenerator(store.nodes.lease).next_ids(1)
        with monkeypatch.context() as patch:  # as the store wrote before: the record as built
            patch.setattr("herald.record.with_null_keys", lambda kept: kept)
            (body,) = store.log.append([built], [event_id])
    finally:
        store.close()
    assert b'"sim"' not in body and b'"detail"' not in body  # stored without them
    return event_id


def _nulls(record: dict[str, Any], *present: str) -> None:
    for key in NULL_WHEN_ABSENT:
        assert key in record, key
        if key not in present:
            assert record[key] is None, key


def test_absent_objects_are_null_on_every_read_path(
    herald: Herald, monkeypatch: pytest.MonkeyPatch
) -> None:
    organisation, token = tenant(herald)
    with receiving() as receiver, herald.client(token) as client:
        handler = client.post(
            "/event_handler",
            json={"name": "hook", "url": receiver.url, "filter": {"event_types": [CODE]}},
        )
        assert handler.status_code == 201, handler.text
        stream = Stream(herald, token, f"?q=type:{CODE}")
        stream.wait_comment("stream open")
        old_id = _stored_before(herald, organisation, monkeypatch)
        posted = client.post("/event", json={"event_type": {"id": CODE}, "description": "bare"})
        assert posted.status_code == 201, posted.text
        new = posted.json()
        _nulls(new)  # the write's answer

        listed = client.get("/event", params={"q": f"type:{CODE}", "sort": "id"}).json()
        assert [event["id"] for event in listed] == [old_id, new["id"]]
        for event in listed:
            _nulls(event, "endpoint")
        old = client.get(f"/event/{old_id}").json()
        _nulls(old, "endpoint")
        assert old["endpoint"] == {"id": 7}
        keys = list(old)  # in the providers' order: after the endpoint, before the target
        assert keys[keys.index("endpoint") : keys.index("target")] == list(NULL_WHEN_ABSENT)
        _nulls(client.get(f"/event/{new['id']}").json())

        receiver.wait_for(lambda: len(receiver.delivered_ids()) >= 2)
        delivered = [request.json() for request in receiver.delivered()]
        assert [event["id"] for event in delivered] == [old_id, new["id"]]
        for event in delivered:
            _nulls(event, "endpoint")

        streamed = [message["data"] for message in stream.wait_for(2)[:2]]
        stream.close()
        assert [event["id"] for event in streamed] == [old_id, new["id"]]
        for event in streamed:
            _nulls(event, "endpoint")
