"""The platform event document's rules (reference platform-event-api.txt) over the app (in process):
any code from a tenant, open target entity types, criticality 0/null "not applicable"."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.herald import Herald
from tests.support.inproc import start_in_process


@pytest.fixture(scope="module")
def herald(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Iterator[Herald]:
    server = start_in_process(
        tmp_path_factory.mktemp("platform") / "herald", database_url=module_database_url
    )
    try:
        yield server
    finally:
        server.stop()


def _tenant(herald: Herald, name: str) -> httpx.Client:
    organisation = herald.create_org(name)
    return herald.client(herald.create_token(organisation, "event:create", "event:read"))


def _post(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/event", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert client.get(f"/event/{created['id']}").json() == created  # served as stored
    return created


def test_a_tenant_creates_events_with_any_code_and_they_are_not_internal(
    herald: Herald,
) -> None:
    with _tenant(herald, "any code") as tenant:
        for code in (5, 0, 777, 10001):
            event = _post(tenant, {"event_type": {"id": code}})
            assert (event["event_type"]["id"], event["internal"]) == (code, False)
    with herald.client(herald.admin_token) as platform:
        organisation = herald.create_org("platform writes")
        body = {"organisation": {"id": organisation}}
        assert _post(platform, {**body, "event_type": {"id": 5}})["internal"] is True
        assert _post(platform, {**body, "event_type": {"id": 10001}})["internal"] is False


@pytest.mark.parametrize("kind", ["device", "folder", "tenant", "user", "gateway_v2"])
def test_target_entity_types_are_an_open_set(herald: Herald, kind: str) -> None:
    with _tenant(herald, f"targets {kind}") as tenant:
        event = _post(tenant, {"event_type": {"id": 10001}, "target": {"type": kind, "id": "7"}})
        spelt = _post(
            tenant, {"event_type": {"id": 10001}, "target": {"type": "Device", "id": "8"}}
        )
        refused = tenant.post(
            "/event", json={"event_type": {"id": 10001}, "target": {"type": "no way", "id": "9"}}
        )
    assert event["target"] == {"type": kind, "id": "7"}
    assert spelt["target"] == {"type": "device", "id": "8"}
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "target.type"


def test_criticality_not_applicable_when_the_producer_says_so(herald: Herald) -> None:
    severe = {"event_type": {"id": 10001}, "event_severity": {"id": 2}}
    with _tenant(herald, "criticality") as tenant:
        zero = _post(tenant, {**severe, "criticality": 0})
        null = _post(tenant, {**severe, "criticality": None})
        absent = _post(tenant, severe)
        given = _post(tenant, {**severe, "criticality": 4})
    not_applicable = {"id": 0, "description": "Not applicable"}
    assert zero["criticality"] == null["criticality"] == not_applicable
    assert absent["criticality"] == {"id": 1, "description": "Critical"}  # from the severity
    assert given["criticality"] == {"id": 4, "description": "Low"}
