"""Provider ingest through a real ``herald serve``: the reference examples, variations, auth."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from herald.catalog import normalise_severity, normalise_source
from herald.ingest.records import parse_detail
from herald.timefmt import parse_timestamp, to_ms
from tests.ingest.examples import emnify_examples, onece_examples
from tests.support.dates import D6
from tests.support.server import HeraldServer, start_server


@pytest.fixture(scope="module")
def herald(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str
) -> Iterator[HeraldServer]:
    """One server for the module and backend; each test works in an organisation of its own."""
    server = start_server(
        tmp_path_factory.mktemp("ingest") / "herald", database_url=module_database_url
    )
    try:
        yield server
    finally:
        server.stop()


def _ingest_client(herald: HeraldServer, name: str, *permissions: str) -> httpx.Client:
    organisation = herald.create_org(name)
    return herald.client(herald.create_token(organisation, *permissions, "event:read"))


def _stored(client: httpx.Client, provider: str) -> dict[str, dict[str, Any]]:
    """The organisation's events from ``provider`` (its log also holds e.g. token events)."""
    response = client.get("/event", params={"per_page": 1000, "provider": provider})
    assert response.status_code == 200, response.text
    return {event["external_id"]: event for event in response.json()}


def _level(value: dict[str, Any], normalise: Any) -> int:
    raw = value.get("id", value.get("description", value.get("name")))
    level: int = normalise(raw)
    return level


def _assert_same(original: dict[str, Any], stored: dict[str, Any], provider: str) -> None:
    """The stored record says what the provider's record said (normalised types, same values)."""
    assert stored["provider"] == provider
    assert stored["external_id"] == str(original["id"])
    assert stored["event_type"]["id"] == int(original["event_type"]["id"])
    assert stored["event_severity"]["id"] == _level(original["event_severity"], normalise_severity)
    assert stored["event_source"]["id"] == _level(original["event_source"], normalise_source)
    assert stored["alert"] is bool(int(original["alert"]))
    assert stored["description"] == original["description"]
    assert to_ms(parse_timestamp(stored["timestamp"])) == to_ms(
        parse_timestamp(original["timestamp"])
    )
    for key in ("endpoint", "sim", "imsi", "user"):
        if original.get(key):
            assert stored[key] == original[key], key
        else:
            assert not stored.get(key), key
    if original.get("detail") is None:
        assert "detail" not in stored
    else:
        assert stored["detail"] == parse_detail(original["detail"])
    assert stored["payload"]["data"] == original  # the original record, provider org included


def test_every_emnify_example_is_stored_and_reads_back(herald: HeraldServer) -> None:
    examples = emnify_examples()
    with _ingest_client(herald, "emnify examples", "ingest:emnify") as client:
        response = client.post("/ingest/emnify", json=examples)
        assert response.status_code == 200, response.text
        assert response.json()["stored"] == len(examples)
        stored = _stored(client, "emnify")
    assert len(stored) == len(examples)
    for original in examples:
        _assert_same(original, stored[str(original["id"])], "emnify")


def test_every_1nce_example_is_stored_and_reads_back(herald: HeraldServer) -> None:
    # The documentation reuses placeholder ids; a real stream's ids are unique.
    examples = [
        {**record, "id": record["id"] * 100 + i} for i, (_, record) in enumerate(onece_examples())
    ]
    with _ingest_client(herald, "1nce examples", "ingest:1nce") as client:
        response = client.post("/ingest/1nce", json=examples)
        assert response.status_code == 200, response.text
        stored = _stored(client, "1nce")
    assert len(stored) == len(examples)
    for original in examples:
        _assert_same(original, stored[str(original["id"])], "1nce")
    quota = next(e for e in stored.values() if e["event_type"]["id"] == 56)
    assert quota["detail"]["volume"] == 500.0  # a JSON-encoded string detail, decoded
    assert quota["detail"]["expiry_date"] == "2022-03-31T00:00:00Z"


def test_a_batch_posted_twice_is_stored_once(herald: HeraldServer) -> None:
    examples = emnify_examples()[:10]
    with _ingest_client(herald, "retransmission", "ingest:emnify") as client:
        first = client.post("/ingest/emnify", json=examples).json()
        again = client.post("/ingest/emnify", json=examples).json()
        single = client.post("/ingest/emnify", json=examples[0]).json()
        total = client.get("/event", params={"provider": "emnify"}).headers["X-Total-Count"]
    assert (first["stored"], first["duplicates"]) == (10, 0)
    assert (again["stored"], again["duplicates"]) == (0, 10)
    assert again["ids"] == first["ids"]
    assert single["ids"] == first["ids"][:1]
    assert total == "10"


def test_real_stream_variations_are_normalised(herald: HeraldServer) -> None:
    record = {
        "id": "7001",
        "timestamp": f"{D6} 10:42:58+0000",
        "event_type": {"id": "3", "description": "Create PDP Context"},
        "event_severity": {"id": "1", "description": "WARN"},
        "event_source": {"name": "Policy Control"},
        "alert": 1,
        "description": "PDP Context Request rejected, because endpoint has no quota.",
        "endpoint": {"id": "55214676", "name": "Test Sim 2", "tags": None},
        "sim": {"id": "7053671", "iccid": "7772229804214642989"},
        "detail": '{"reason": "no quota", "attempt": 2}',
        "keen": {"id": "11855d2331d1f324470ca3b"},
    }
    with _ingest_client(herald, "variations", "ingest:emnify") as client:
        assert client.post("/ingest/emnify", json=record).status_code == 200
        (event,) = client.get("/event", params={"provider": "emnify"}).json()
        by_endpoint = client.get("/endpoint/55214676/event").json()
    assert event["timestamp"] == f"{D6}T10:42:58.000Z"
    assert event["event_type"] == {"id": 3, "description": "Create PDP Context"}
    assert (event["event_severity"]["id"], event["event_source"]["id"]) == (1, 1)
    assert event["alert"] is True
    assert event["endpoint"]["id"] == 55214676
    assert event["sim"]["id"] == 7053671
    assert event["detail"] == {"reason": "no quota", "attempt": 2}
    assert event["payload"]["data"]["keen"] == record["keen"]
    assert [e["id"] for e in by_endpoint] == [event["id"]]


def test_stacuity_envelopes_map_by_moniker_and_scope(herald: HeraldServer) -> None:
    envelopes: list[dict[str, Any]] = [
        {
            "eventId": "a1b2c3",
            "eventTime": f"{D6}T10:00:00Z",
            "eventType": "endpointdatasessioncreated_v1",
            "endpointId": 4711,
            "detail": {"apn": "stacuity.iot", "ipAddress": "10.1.2.3"},
        },
        {
            "eventId": "d4e5f6",
            "eventTime": f"{D6}T10:05:00Z",
            "eventType": "vpnikephase1down_v1",
            "routingTargetId": "rt-eu-1",
            "detail": {"peer": "203.0.113.7"},
        },
        {
            "eventId": "g7h8",
            "eventTime": f"{D6}T10:06:00Z",
            "eventType": "accountdepleted_v1",
            "accountId": "acc-9",
        },
    ]
    with _ingest_client(herald, "stacuity", "ingest:stacuity") as client:
        assert (
            client.post("/ingest/stacuity", json={"message": "webhook test"}).json()["stored"] == 0
        )
        assert client.post("/ingest/stacuity", json=envelopes).status_code == 200
        stored = _stored(client, "stacuity")
        organisation = next(iter(stored.values()))["organisation"]["id"]
    session, vpn, account = (stored[e["eventId"]] for e in envelopes)
    assert (session["event_type"]["id"], session["moniker"]) == (3, "endpointdatasessioncreated_v1")
    assert session["endpoint"] == {"id": 4711}
    assert session["target"] == {"type": "endpoint", "id": "4711"}
    assert session["detail"] == envelopes[0]["detail"]
    assert vpn["moniker"] == "vpnikephase1down_v1"
    assert vpn["target"] == {"type": "routing_target", "id": "rt-eu-1"}
    assert vpn["event_severity"]["id"] == 1
    assert account["target"] == {"type": "organisation", "id": str(organisation)}
    assert all(e["provider"] == "stacuity" for e in stored.values())


def test_each_adapter_needs_its_own_permission(herald: HeraldServer) -> None:
    record = emnify_examples()[0]
    with _ingest_client(herald, "emnify only", "ingest:emnify") as client:
        assert client.post("/ingest/1nce", json=record).status_code == 403
        assert client.post("/ingest/stacuity", json={"eventId": 1}).status_code == 403
        foreign = client.post("/ingest/emnify", params={"organisation": 1}, json=record)
        assert foreign.status_code == 403
    with herald.client() as anonymous:
        assert anonymous.post("/ingest/emnify", json=record).status_code == 401


def test_bad_records_are_refused_naming_index_and_field(herald: HeraldServer) -> None:
    good = emnify_examples()[0]
    with _ingest_client(herald, "bad input", "ingest:emnify", "ingest:stacuity") as client:
        no_id = client.post("/ingest/emnify", json=[good, {**good, "id": None}])
        bad_alert = client.post("/ingest/emnify", json={**good, "alert": "maybe"})
        unknown = client.post("/ingest/emnify", json={**good, "event_type": {"id": 9999}})
        moniker = client.post(
            "/ingest/stacuity", json={"eventId": "x", "eventType": "nosuchthing_v1"}
        )
        not_json = client.post("/ingest/emnify", content=b"{nope")
        stored = client.get("/event", params={"provider": "emnify|stacuity"}).json()
    assert no_id.status_code == 422
    assert no_id.headers["content-type"] == "application/problem+json"
    assert no_id.json()["errors"] == [
        {"field": "id", "reason": no_id.json()["errors"][0]["reason"], "index": 1}
    ]
    assert bad_alert.status_code == 422 and bad_alert.json()["errors"][0]["field"] == "alert"
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "event_type.id"
    assert moniker.status_code == 422 and moniker.json()["errors"][0]["field"] == "moniker"
    assert not_json.status_code == 400
    assert stored == []  # nothing of a refused batch is stored


def test_an_internal_token_names_the_organisation(herald: HeraldServer, tmp_path: Path) -> None:
    organisation = herald.create_org("internal ingest")
    record = emnify_examples()[1]
    with herald.client(herald.admin_token) as admin:
        unnamed = admin.post("/ingest/emnify", json=record)
        named = admin.post("/ingest/emnify", params={"organisation": organisation}, json=record)
        stored = admin.get("/event", params={"organisation": organisation, "provider": "emnify"})
    assert unnamed.status_code == 422
    assert unnamed.json()["errors"][0]["field"] == "organisation"
    assert named.status_code == 200
    assert [e["organisation"]["id"] for e in stored.json()] == [organisation]
