"""Small fidelity gaps of issue #34 point 6, over the app (in process) on both backends:
a tenant's API event has source API; criticality in its served object form and its list;
an unknown Stacuity moniker and a Stacuity account id findable; the platform event API's
``tenant_id`` / ``target_entity_type`` / ``target_entity_id`` read, not kept as unknown."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from herald.api.app import create_app
from herald.config import Settings
from tests.support.herald import Herald
from tests.support.inproc import start_in_process


@pytest.fixture(scope="module")
def herald(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Iterator[Herald]:
    server = start_in_process(
        tmp_path_factory.mktemp("fidelity") / "herald", database_url=module_database_url
    )
    try:
        yield server
    finally:
        server.stop()


def _tenant(herald: Herald, name: str, *permissions: str) -> tuple[int, httpx.Client]:
    organisation = herald.create_org(name)
    granted = permissions or ("event:create", "event:read")
    return organisation, herald.client(herald.create_token(organisation, *granted))


def _post(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/event", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _minutes_ago(minutes: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60 * minutes))


def _errors(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return [error["field"] for error in response.json()["errors"]]


def _found(client: httpx.Client, q: str) -> list[dict[str, Any]]:
    response = client.get("/event", params={"q": q})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


def test_a_tenants_api_event_has_source_api(herald: Herald) -> None:
    _, tenant = _tenant(herald, "source api")
    with tenant:
        # Update location's catalogued source is Network: a tenant's post is not the network
        event = _post(tenant, {"event_type": {"id": 1}})
        assert event["event_source"] == {"id": 2, "description": "API"}
        named = _post(tenant, {"event_type": {"id": 1}, "event_source": {"id": 1}})
        assert named["event_source"] == {"id": 1, "description": "Policy Control"}
    organisation = herald.create_org("source platform")
    with herald.client(herald.admin_token) as platform:
        body = {"organisation": {"id": organisation}, "event_type": {"id": 1}}
        assert _post(platform, body)["event_source"] == {"id": 0, "description": "Network"}


def test_criticality_in_its_served_form_and_its_list(herald: Herald) -> None:
    _, tenant = _tenant(herald, "criticality object")
    with tenant:
        levels = tenant.get("/event/criticality")
        assert levels.status_code == 200
        assert levels.json()[0] == {"id": 0, "description": "Not applicable"}
        assert [level["id"] for level in levels.json()] == [0, 1, 2, 3, 4, 5]
        served = _post(tenant, {"event_type": {"id": 10001}, "criticality": 2})["criticality"]
        assert served == {"id": 2, "description": "High"}
        again = _post(tenant, {"event_type": {"id": 10002}, "criticality": served})
        assert again["criticality"] == served  # what is served is accepted back
        bare = _post(tenant, {"event_type": {"id": 10003}, "criticality": {"id": 4}})
        assert bare["criticality"] == {"id": 4, "description": "Low"}
        assert {e["event_type"]["id"] for e in _found(tenant, "criticality:2")} == {10001, 10002}
        for wrong in ({"id": 9}, {"description": "High"}, {"id": "high"}, 9):
            refused = tenant.post("/event", json={"event_type": {"id": 1}, "criticality": wrong})
            assert _errors(refused) == ["criticality"], wrong


def test_stacuity_unknown_moniker_and_account_id(herald: Herald) -> None:
    organisation, client = _tenant(herald, "stacuity fidelity", "ingest:stacuity", "event:read")
    envelopes = [
        {
            "eventId": "sf-1",
            "eventTime": _minutes_ago(2),
            "eventType": "brandnewthing_v1",  # no catalogue knows it yet
            "accountId": "acc-4711",
            "detail": {"what": "new"},
        },
        {
            "eventId": "sf-2",
            "eventTime": _minutes_ago(1),
            "eventType": "endpointdatasessioncreated_v1",
            "endpointId": "12",
            "detail": {},
        },
    ]
    with client:
        answer = client.post("/ingest/stacuity", json=envelopes)
        assert answer.json()["stored"] == 2, answer.text
        (unknown,) = _found(client, "moniker:brandnewthing_v1")
        assert unknown["moniker"] == unknown["provider_type"] == "brandnewthing_v1"
        assert unknown["organisation"]["id"] == organisation
        (account,) = _found(client, "provider_organisation:acc-4711")
        assert account["external_id"] == "sf-1"
        assert _found(client, "moniker:nothingsentthis_v1") == []
        assert [
            e["external_id"] for e in _found(client, "moniker:endpointdatasessioncreated_v1")
        ] == ["sf-2"]


def test_platform_event_names_are_read_or_refused(herald: Herald) -> None:
    organisation, tenant = _tenant(herald, "platform names")
    other = herald.create_org("platform names elsewhere")
    with tenant:
        event = _post(
            tenant,
            {
                "event_type": {"id": 10001},
                "tenant_id": organisation,
                "target_entity_type": "Device",
                "target_entity_id": 17,
            },
        )
        assert event["target"] == {"type": "device", "id": "17"}
        assert event["organisation"]["id"] == organisation
        for name in ("tenant_id", "target_entity_type", "target_entity_id"):
            assert name not in event, name
        assert [e["id"] for e in _found(tenant, "target_type:device,target_id:17")] == [event["id"]]
        as_text = _post(tenant, {"event_type": {"id": 10001}, "tenant_id": str(organisation)})
        assert "tenant_id" not in as_text
        wrong = tenant.post("/event", json={"event_type": {"id": 10001}, "tenant_id": other})
        assert _errors(wrong) == ["tenant_id"]
        assert f"must be {organisation}" in wrong.text
        half = tenant.post("/event", json={"event_type": {"id": 10001}, "target_entity_id": 5})
        assert _errors(half) == ["target_entity_type"]
        both = tenant.post(
            "/event",
            json={
                "event_type": {"id": 10001},
                "target": {"type": "device", "id": "1"},
                "target_entity_type": "device",
                "target_entity_id": "2",
            },
        )
        assert _errors(both) == ["target_entity_type"]
        bad_type = tenant.post(
            "/event",
            json={
                "event_type": {"id": 10001},
                "target_entity_type": "no way",
                "target_entity_id": "2",
            },
        )
        assert _errors(bad_type) == ["target_entity_type"]


def test_the_openapi_document_describes_them(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'herald.db'}", demo=False))
    document = app.openapi()
    event_in = document["components"]["schemas"]["EventIn"]["properties"]
    number, served, null = event_in["criticality"]["anyOf"]
    assert number == {"type": "integer", "minimum": 0, "maximum": 5}
    assert served["required"] == ["id"] and served["properties"]["id"] == number
    assert null == {"type": "null"}
    for name in ("tenant_id", "target_entity_type", "target_entity_id"):
        assert "platform event API" in event_in[name]["description"], name
    assert "/api/v1/event/criticality" in document["paths"]
    records = document["paths"]["/api/v1/endpoint/{endpoint_id}/usage/records"]["get"]
    assert "cost" in records["responses"]["200"]["content"]["application/json"]["example"][0]
