"""emnify's remaining ``q`` fields (issue #34 point 4): ``network``, ``rat`` and
``organisation:<name>``, over the app (in process) on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from herald.api.app import create_app
from herald.config import Settings
from tests.support.herald import Herald
from tests.support.inproc import start_in_process
from tests.support.records import emnify_record

GERMANY = {"id": 74, "name": "Germany", "country_code": "49", "mcc": "262", "iso_code": "de"}


@pytest.fixture(scope="module")
def herald(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Iterator[Herald]:
    server = start_in_process(
        tmp_path_factory.mktemp("emnify-fields") / "herald", database_url=module_database_url
    )
    try:
        yield server
    finally:
        server.stop()


def _pdp(record_id: str, network: str, rat: int) -> dict[str, Any]:
    detail = {"id": 3, "name": network, "country": GERMANY, "pdp_context": {"rat_type": rat}}
    return emnify_record(record_id, detail=detail)


@pytest.fixture(scope="module")
def fleet(herald: Herald) -> dict[str, Any]:
    """Two organisations, each with a Vodafone 4G, a Telekom 2G and a Telekom 3G session."""
    names = {"north": "Fields North GmbH", "south": "Fields South AG"}
    orgs = {key: herald.create_org(name) for key, name in names.items()}
    readers = {}
    for key, organisation in orgs.items():
        token = herald.create_token(organisation, "ingest:emnify", "event:read")
        with herald.client(token) as client:
            records = [
                _pdp(f"{key}-1", "Vodafone", 6),
                _pdp(f"{key}-2", "Telekom", 2),
                _pdp(f"{key}-3", "Telekom", 1),
            ]
            answer = client.post("/ingest/emnify", json=records)
            assert answer.json()["stored"] == 3, answer.text
        readers[key] = token
    return {"names": names, "orgs": orgs, "readers": readers}


def _ids(client: httpx.Client, **params: str) -> set[str]:
    response = client.get("/event", params={"provider": "emnify", **params})
    assert response.status_code == 200, response.text
    return {event["external_id"] for event in response.json()}


def test_network_is_the_operator(herald: Herald, fleet: dict[str, Any]) -> None:
    with herald.client(fleet["readers"]["north"]) as client:
        assert _ids(client, q="network:Vodafone") == {"north-1"}
        assert _ids(client, q="network:Telekom|Vodafone") == {"north-1", "north-2", "north-3"}
        assert _ids(client, network="Telekom") == {"north-2", "north-3"}  # as a parameter
        response = client.get("/event", params={"q": "network:Telekom"})
        assert response.headers["x-filter"] == "network:Telekom"


def test_rat_by_number_or_name(herald: Herald, fleet: dict[str, Any]) -> None:
    with herald.client(fleet["readers"]["north"]) as client:
        assert _ids(client, q="rat:6") == {"north-1"}
        assert _ids(client, q="rat:4G") == {"north-1"}
        assert _ids(client, q="rat:2G|3G") == {"north-2", "north-3"}
        assert _ids(client, q="rat:geran,network:Telekom") == {"north-2"}
        assert _ids(client, q="rat:5G") == set()
        bad = client.get("/event", params={"q": "rat:warp"})
        assert bad.status_code == 422
        assert bad.json()["errors"] == [
            {"field": "q.rat", "reason": "'warp' is not a whole number"}
        ]


def test_organisation_by_name(herald: Herald, fleet: dict[str, Any]) -> None:
    north, south = fleet["names"]["north"], fleet["names"]["south"]
    with herald.client(herald.admin_token) as admin:
        assert _ids(admin, q=f"organisation:{north}") == {"north-1", "north-2", "north-3"}
        both = _ids(admin, q=f"organisation:{north}|{south},rat:4G")
        assert both == {"north-1", "south-1"}
        by_id = _ids(admin, q=f"organisation:{fleet['orgs']['south']},network:Vodafone")
        assert by_id == {"south-1"}
        assert _ids(admin, q="organisation:Nobody Ltd") == set()
        too_long = admin.get("/event", params={"q": "organisation:" + "x" * 300})
        assert too_long.status_code == 422
        stats = admin.get(
            "/event/stats", params={"q": f"organisation:{south}", "from": "2020-01-01"}
        )
        assert stats.status_code == 200, stats.text
    with herald.client(fleet["readers"]["north"]) as client:
        assert _ids(client, q=f"organisation:{north}") == {"north-1", "north-2", "north-3"}
        assert _ids(client, q=f"organisation:{south}") == set()  # another tenant's: none


def test_the_openapi_document_lists_the_q_fields(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'herald.db'}", demo=False))
    (q,) = [
        p for p in app.openapi()["paths"]["/api/v1/event"]["get"]["parameters"] if p["name"] == "q"
    ]
    for name in ("network", "rat", "organisation", "iccid_with_luhn", "country"):
        assert name in q["description"], name
    assert "organisation takes an id or a name" in q["description"]
