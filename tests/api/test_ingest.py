"""Provider ingest through the app (in process): the reference examples, variations, auth."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from herald.catalog import normalise_severity, normalise_source
from herald.ingest.records import parse_detail
from herald.timefmt import parse_timestamp, to_ms
from tests.ingest.examples import emnify_examples, onece_examples, recently, stacuity_examples
from tests.support.dates import D6
from tests.support.herald import Herald
from tests.support.inproc import start_in_process
from tests.support.records import emnify_record
from tests.support.server import start_server


@pytest.fixture(scope="module")
def herald(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Iterator[Herald]:
    """One server for the module and backend; each test works in an organisation of its own."""
    server = start_in_process(
        tmp_path_factory.mktemp("ingest") / "herald", database_url=module_database_url
    )
    try:
        yield server
    finally:
        server.stop()


def _ingest_client(herald: Herald, name: str, *permissions: str) -> httpx.Client:
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
    assert stored["provider_type"] == str(original["event_type"]["id"])
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
        else:  # served as null, as the provider's record lists it (issue #34)
            assert key in stored and stored[key] is None, key
    if original.get("detail") is None:
        assert stored["detail"] is None
    else:
        assert stored["detail"] == parse_detail(original["detail"])
    assert stored["payload"]["data"] == original  # the original record, provider org included


def test_every_emnify_example_is_stored_and_reads_back(herald: Herald) -> None:
    examples = recently(emnify_examples())
    with _ingest_client(herald, "emnify examples", "ingest:emnify") as client:
        response = client.post("/ingest/emnify", json=examples)
        assert response.status_code == 200, response.text
        assert response.json()["stored"] == len(examples)
        stored = _stored(client, "emnify")
    assert len(stored) == len(examples)
    for original in examples:
        _assert_same(original, stored[str(original["id"])], "emnify")


def test_every_1nce_example_is_stored_and_reads_back(herald: Herald) -> None:
    # The documentation reuses placeholder ids; a real stream's ids are unique.
    examples = recently(
        [{**record, "id": record["id"] * 100 + i} for i, (_, record) in enumerate(onece_examples())]
    )
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


def test_a_batch_posted_twice_is_stored_once(herald: Herald) -> None:
    examples = recently(emnify_examples()[:10])
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


def test_real_stream_variations_are_normalised(herald: Herald) -> None:
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


def test_stacuity_envelopes_map_by_moniker_and_scope(herald: Herald) -> None:
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


def test_each_adapter_needs_its_own_permission(herald: Herald) -> None:
    record = emnify_examples()[0]
    with _ingest_client(herald, "emnify only", "ingest:emnify") as client:
        assert client.post("/ingest/1nce", json=record).status_code == 403
        assert client.post("/ingest/stacuity", json={"eventId": 1}).status_code == 403
        foreign = client.post("/ingest/emnify", params={"organisation": 1}, json=record)
        assert foreign.status_code == 403
    with herald.client() as anonymous:
        assert anonymous.post("/ingest/emnify", json=record).status_code == 401


def test_every_stacuity_moniker_of_the_reference_is_stored_with_its_meaning(
    herald: Herald,
) -> None:
    envelopes = recently(stacuity_examples(), "eventTime")
    assert len(envelopes) == 46
    with _ingest_client(herald, "stacuity monikers", "ingest:stacuity") as client:
        answer = client.post("/ingest/stacuity", json=envelopes).json()
        types = {t["id"]: t for t in client.get("/event/type").json()}
        stored = _stored(client, "stacuity")
    assert (answer["stored"], answer["quarantined"]) == (46, 0)
    for envelope in envelopes:
        event = stored[envelope["eventId"]]
        moniker = envelope["eventType"]
        assert event["moniker"] == event["provider_type"] == moniker
        assert moniker in types[event["event_type"]["id"]]["monikers"]
        assert event["detail"] == envelope["detail"]
    assert len({stored[e["eventId"]]["event_type"]["id"] for e in envelopes}) == 46
    by_moniker = {e["eventType"]: stored[e["eventId"]] for e in envelopes}
    created = by_moniker["endpointdatasessioncreated_v1"]
    failed = by_moniker["endpointdatasessioncreatefailed_v1"]
    assert created["event_type"] == {"id": 3, "description": "Create PDP Context"}
    assert failed["event_type"] == {
        "id": 1037,
        "description": "Endpoint Data Session Create Failed v1",
    }
    assert (created["event_severity"]["id"], failed["event_severity"]["id"]) == (0, 1)


def test_the_catalogue_explains_each_type(herald: Herald) -> None:
    with _ingest_client(herald, "catalogue reader") as client:
        types = {t["id"]: t for t in client.get("/event/type").json()}
    assert all(t["explanation"] for t in types.values())
    assert "Online" in types[3]["state_after"]
    assert "Offline" in types[15]["state_after"]
    assert types[1102]["description"] == "Unknown Stacuity event"


def _rejected(client: httpx.Client, **params: Any) -> tuple[list[dict[str, Any]], int]:
    response = client.get("/ingest/rejected", params=params)
    assert response.status_code == 200, response.text
    return response.json(), int(response.headers["X-Total-Count"])


def test_one_unknown_type_and_one_broken_record_never_hold_the_batch_up(
    herald: Herald,
) -> None:
    good, other = recently(emnify_examples()[:2])
    unknown = {**other, "id": 99001, "event_type": {"id": 77, "description": "Brand new"}}
    broken = {**other, "id": 99002, "alert": "maybe"}
    batch = [good, unknown, broken, 42]
    with _ingest_client(herald, "robust batch", "ingest:emnify") as client:
        answer = client.post("/ingest/emnify", json=batch)
        assert answer.status_code == 200, answer.text
        stored = _stored(client, "emnify")
        rejected, total = _rejected(client)
        again = client.post("/ingest/emnify", json=batch).json()
        stored_again = _stored(client, "emnify")
        rejected_again, total_again = _rejected(client)
    body = answer.json()
    assert (body["received"], body["stored"], body["duplicates"], body["quarantined"]) == (
        4,
        2,
        0,
        2,
    )
    statuses = [(r["index"], r["status"]) for r in body["records"]]
    assert statuses == [(0, "stored"), (1, "stored"), (2, "quarantined"), (3, "quarantined")]
    assert body["records"][2]["errors"][0]["field"] == "alert"
    assert body["records"][3]["errors"][0]["field"] == "body"
    # the unknown type is stored under emnify's generic type, its own id kept beside it
    kept = stored["99001"]
    assert kept["event_type"] == {"id": 1100, "description": "Unknown emnify event"}
    assert kept["provider_type"] == "77"
    assert kept["payload"]["data"]["event_type"] == unknown["event_type"]
    # the broken ones wait in the quarantine with why and their bytes
    assert total == 2
    by_id = {r["id"]: r for r in rejected}
    broken_row = by_id[body["records"][2]["rejected_id"]]
    assert broken_row["record"] == broken and broken_row["provider"] == "emnify"
    assert broken_row["errors"][0]["field"] == "alert" and broken_row["attempts"] == 1
    assert by_id[body["records"][3]["rejected_id"]]["record"] == 42
    # the streamer sends the batch again: nothing is stored or quarantined twice
    assert (again["stored"], again["duplicates"], again["quarantined"]) == (0, 2, 2)
    assert again["ids"] == body["ids"]
    assert [r.get("rejected_id") for r in again["records"]] == [
        r.get("rejected_id") for r in body["records"]
    ]
    assert stored_again.keys() == stored.keys()
    assert total_again == 2 and {r["id"] for r in rejected_again} == set(by_id)


def test_unknown_monikers_are_stored_under_stacuitys_generic_type(herald: Herald) -> None:
    (envelope,) = recently(
        [{"eventId": "v2", "eventType": "bundleactivated_v2", "accountId": "acc-1"}], "eventTime"
    )
    with _ingest_client(herald, "new moniker", "ingest:stacuity") as client:
        answer = client.post("/ingest/stacuity", json=envelope).json()
        (event,) = _stored(client, "stacuity").values()
    assert (answer["stored"], answer["quarantined"]) == (1, 0)
    assert event["event_type"] == {"id": 1102, "description": "Unknown Stacuity event"}
    assert event["provider_type"] == "bundleactivated_v2"
    assert event["payload"]["data"] == envelope


def test_only_a_body_that_is_no_batch_is_refused(herald: Herald) -> None:
    with _ingest_client(herald, "bad bodies", "ingest:emnify") as client:
        not_json = client.post("/ingest/emnify", content=b"{nope")
        scalar = client.post("/ingest/emnify", json=5)
        text = client.post("/ingest/emnify", json="records")
        empty = client.post("/ingest/emnify", json=[])
        rejected = _rejected(client)
    assert not_json.status_code == 400
    assert not_json.headers["content-type"] == "application/problem+json"
    for refused in (scalar, text):
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["field"] == "body"
    assert empty.status_code == 200 and empty.json()["received"] == 0
    assert rejected == ([], 0)


def test_the_quarantine_is_each_organisations_own(herald: Herald) -> None:
    (record,) = recently([{**emnify_examples()[0], "id": 99100, "alert": "perhaps"}])
    with (
        _ingest_client(herald, "quarantine owner", "ingest:emnify") as owner,
        _ingest_client(herald, "quarantine stranger", "ingest:emnify") as stranger,
    ):
        rejected_id = owner.post("/ingest/emnify", json=record).json()["records"][0]["rejected_id"]
        assert owner.get(f"/ingest/rejected/{rejected_id}").json()["record"] == record
        assert _rejected(stranger) == ([], 0)
        assert stranger.get(f"/ingest/rejected/{rejected_id}").status_code == 404
        assert stranger.post(f"/ingest/rejected/{rejected_id}/retry").status_code == 404
        assert stranger.delete(f"/ingest/rejected/{rejected_id}").status_code == 404
        owner_id = owner.get(f"/ingest/rejected/{rejected_id}").json()["organisation"]["id"]
        foreign = stranger.get("/ingest/rejected", params={"organisation": owner_id})
        assert foreign.status_code == 403
        assert owner.delete(f"/ingest/rejected/{rejected_id}").status_code == 204
        assert _rejected(owner) == ([], 0)
    with herald.client(herald.create_token(owner_id, "event:read")) as reader:
        assert reader.post("/ingest/rejected/retry").status_code == 403


def test_an_internal_token_names_the_organisation(herald: Herald, tmp_path: Path) -> None:
    organisation = herald.create_org("internal ingest")
    record = emnify_examples()[1]
    with herald.client(herald.admin_token) as admin:
        unnamed = admin.post("/ingest/emnify", json=record)
        unknown = admin.post("/ingest/emnify", params={"organisation": 987654321}, json=record)
        named = admin.post("/ingest/emnify", params={"organisation": organisation}, json=record)
        stored = admin.get("/event", params={"organisation": organisation, "provider": "emnify"})
    assert unnamed.status_code == 422
    assert unnamed.json()["errors"][0]["field"] == "organisation"
    assert unknown.status_code == 422  # no quarantine for an organisation that does not exist
    assert unknown.json()["errors"] == [{"field": "organisation", "reason": "unknown organisation"}]
    assert named.status_code == 200
    assert [e["organisation"]["id"] for e in stored.json()] == [organisation]


def test_quarantined_records_are_ingested_again_after_an_update(
    database_url: str, tmp_path: Path
) -> None:
    """What this Herald refuses (a time an hour ahead of its clock) one configured otherwise
    stores: the retried records leave the quarantine, once, and are counted in /metrics
    (a ``herald serve`` process: restarted, and its counters its own)."""
    server = start_server(tmp_path / "herald", database_url=database_url)
    try:
        organisation = server.create_org("updated herald")
        token = server.create_token(organisation, "ingest:emnify", "event:read")
        ahead = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        base = emnify_examples()[0]
        records = [{**base, "id": 99200 + i, "timestamp": ahead} for i in range(3)]
        with server.client(token) as client:
            answer = client.post("/ingest/emnify", json=records).json()
            assert answer["quarantined"] == 3
            assert answer["records"][0]["errors"][0]["field"] == "timestamp"
            first = answer["records"][0]["rejected_id"]
            still = client.post(f"/ingest/rejected/{first}/retry").json()
            assert still["status"] == "quarantined"
            assert client.get(f"/ingest/rejected/{first}").json()["attempts"] == 2
        scraped = httpx.get(
            f"{server.url}/metrics", headers={"Authorization": f"Bearer {server.admin_token}"}
        ).text
        assert 'herald_ingest_quarantined_total{provider="emnify"} 3.0' in scraped

        server.env["HERALD_MAX_FUTURE_SKEW_SECONDS"] = "7200"  # the update
        server.restart()
        with server.client(token) as client:
            one = client.post(f"/ingest/rejected/{first}/retry")
            assert one.status_code == 200, one.text
            assert one.json()["status"] == "stored"
            rest = client.post("/ingest/rejected/retry").json()
            assert (rest["retried"], rest["stored"], rest["remaining"]) == (2, 2, 0)
            again = client.post("/ingest/emnify", json=records).json()
            stored = _stored(client, "emnify")
            assert _rejected(client) == ([], 0)
        assert sorted(stored) == sorted(str(r["id"]) for r in records)
        assert (again["duplicates"], again["quarantined"]) == (3, 0)
        assert stored[str(records[0]["id"])]["id"] == one.json()["id"]
    finally:
        server.stop()


def test_the_quarantine_is_purged_with_the_events(database_url: str, tmp_path: Path) -> None:
    """A quarantined record stays for the retention period (here 2 s), then goes."""
    env = {"HERALD_RETENTION_DAYS": str(2 / 86400), "HERALD_PURGE_INTERVAL_SECONDS": "0.2"}
    server = start_in_process(tmp_path / "herald", env=env, database_url=database_url)
    try:
        organisation = server.create_org("short memory")
        token = server.create_token(organisation, "ingest:emnify", "event:read")
        with server.client(token) as client:
            record = {**emnify_examples()[0], "id": 99300, "alert": "sometimes"}
            assert client.post("/ingest/emnify", json=record).json()["quarantined"] == 1
            assert _rejected(client)[1] == 1
            deadline = time.monotonic() + 20
            while _rejected(client)[1]:
                assert time.monotonic() < deadline, "the quarantined record was never purged"
                time.sleep(0.2)
    finally:
        server.stop()


def test_provider_filters_find_what_the_provider_said(herald: Herald) -> None:
    """A Stacuity endpoint id that is no number, the provider's type, record id, SIM MSISDN
    and sub-organisation: each found by its filter (issue 16's fidelity points)."""
    envelopes = recently(
        [
            {"eventId": "s1", "eventType": "bundleactivated_v2", "endpointId": "ep-7f3a"},
            {"eventId": "s2", "eventType": "endpointdatasessioncreated_v1", "endpointId": 12},
        ],
        "eventTime",
    )
    records = recently(
        [
            emnify_record("r1", sim={"id": 1, "iccid": "8988303", "msisdn": "4915100001"}),
            emnify_record("r2", organisation={"id": 77, "name": "Sub org"}),
        ],
        "timestamp",
    )
    with _ingest_client(herald, "fidelity", "ingest:stacuity", "ingest:emnify") as client:
        assert client.post("/ingest/stacuity", json=envelopes).json()["stored"] == 2
        assert client.post("/ingest/emnify", json=records).json()["stored"] == 2

        def ids(path: str = "/event", **params: str) -> list[str]:
            answer = client.get(path, params=params)
            assert answer.status_code == 200, answer.text
            return sorted(event["external_id"] for event in answer.json())

        assert ids(endpoint="ep-7f3a") == ["s1"]
        assert ids("/endpoint/ep-7f3a/event") == ["s1"]
        assert ids("/endpoint/12/event") == ["s2"]
        assert ids(provider_type="bundleactivated_v2") == ["s1"]
        assert ids(q="external_id:r1|s2") == ["r1", "s2"]
        assert ids(msisdn="4915100001") == ["r1"]
        assert ids(provider_organisation="77") == ["r2"]
