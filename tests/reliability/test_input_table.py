"""The input table: each input that once answered 500 (or was wrongly accepted) answers a
4xx problem naming the field, over the app served in process on each backend; the CLI's bad
arguments are messages, never tracebacks."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field as default
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from herald.store.sql import encode_cursor
from herald.timefmt import format_ms, to_ms
from tests.reliability.conftest import ALL, Tenant, make_tenant
from tests.reliability.figures import Figures
from tests.support.herald import HERALD
from tests.support.inproc import InProcessHerald, start_in_process
from tests.support.records import emnify_record

BAD_TIMES = ["0001-01-01T00:00:00+00:09", "9999-12-31T23:59:59-23:59", "1969-12-31T23:59:59Z"]
GOOD_TIME = "2026-01-01T00:00:00Z"
HUGE = 99999999999999999999999


def _deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"x": value}
    return value


@dataclass(frozen=True)
class Case:
    """One hostile input: the request, the statuses it may get, the field it must name."""

    name: str
    method: str
    path: str
    field: str
    params: dict[str, str] = default(default_factory=dict)
    json: Any = None
    headers: dict[str, str] = default(default_factory=dict)
    statuses: tuple[int, ...] = (400, 422)


def _cases() -> list[Case]:
    cases: list[Case] = []
    for i, moment in enumerate(BAD_TIMES):
        cases += [
            Case(f"event timestamp {i}", "POST", "/event", "timestamp",
                 json={"event_type": {"id": 10001}, "timestamp": moment}),
            Case(f"emnify timestamp {i}", "POST", "/ingest/emnify", "timestamp",
                 json=emnify_record(f"t{i}", timestamp=moment)),
            Case(f"list from {i}", "GET", "/event", "from", params={"from": moment}),
            Case(f"list until {i}", "GET", "/event", "until", params={"until": moment}),
            Case(f"list q from {i}", "GET", "/event", "q.from", params={"q": f"from:{moment}"}),
            Case(f"stats from {i}", "GET", "/event/stats", "from", params={"from": moment}),
            Case(f"stats until {i}", "GET", "/event/stats", "until", params={"until": moment}),
            Case(f"replay from {i}", "POST", "/event_handler/{handler}/replay", "from",
                 json={"from": moment}),
            Case(f"replay until {i}", "POST", "/event_handler/{handler}/replay", "until",
                 json={"from": GOOD_TIME, "until": moment}),
        ]  # fmt: skip
    return [
        *cases,
        Case("event cursor past 64 bits", "GET", "/event", "cursor",
             params={"cursor": encode_cursor(2**64, 2**70), "sort": "-timestamp"}),
        Case("delivery cursor past 64 bits", "GET", "/event_handler/{handler}/delivery",
             "cursor", params={"cursor": str(HUGE)}),
        Case("handler filter type past 64 bits", "POST", "/event_handler", "filter",
             json={"name": "h", "url": "http://127.0.0.1:9/", "filter": {"event_types": [2**64]}}),
        Case("stats limit ²", "GET", "/event/stats", "limit",
             params={"group": "type", "limit": "²"}),
        Case("emnify event_type.id ²", "POST", "/ingest/emnify", "event_type.id",
             json=emnify_record("sq", event_type={"id": "²"})),
        Case("detail 254 levels deep", "POST", "/event", "detail",
             json={"event_type": {"id": 10001}, "detail": _deep(254)}),
        Case("emnify detail 254 levels deep", "POST", "/ingest/emnify", "body",
             json=emnify_record("deep", detail=_deep(254))),
        Case("emnify detail 40 levels deep", "POST", "/ingest/emnify", "detail",
             json=emnify_record("deep40", detail=_deep(40))),
        Case("endpoint field 254 levels deep", "POST", "/event", "endpoint",
             json={"event_type": {"id": 10001}, "endpoint": {"id": 1, "x": _deep(254)}}),
        Case("unknown field 254 levels deep", "POST", "/event", "custom",
             json={"event_type": {"id": 10001}, "custom": _deep(254)}),
        Case("NUL in description", "POST", "/event", "description",
             json={"event_type": {"id": 10001}, "description": "a\x00b"}),
        Case("NUL in detail key", "POST", "/event", "detail",
             json={"event_type": {"id": 10001}, "detail": {"k\x00": 1}}),
        Case("NUL in emnify record", "POST", "/ingest/emnify", "description",
             json=emnify_record("nul", description="a\x00b")),
        Case("NUL in filter", "GET", "/event", "q", params={"q": "description:a\x00b"}),
        Case("NUL in plain filter", "GET", "/event/stats", "imsi", params={"imsi": "\x00"}),
        Case("NUL in handler name", "POST", "/event_handler", "name",
             json={"name": "a\x00", "url": "http://127.0.0.1:9/"}),
        Case("NUL in handler filter", "PATCH", "/event_handler/{handler}", "filter.tags[0]",
             json={"filter": {"tags": ["\x00"]}}),
        Case("sort +-+-id", "GET", "/event", "sort", params={"sort": "+-+-id"}),
        Case("sort --id", "GET", "/event", "sort", params={"sort": "--id"}),
        Case("another organisation's handler", "POST", "/event_handler", "organisation_id",
             json={"name": "h", "url": "http://127.0.0.1:9/", "organisation_id": 2**40},
             statuses=(403,)),
    ]  # fmt: skip


CASES = _cases()


@dataclass
class World:
    server: InProcessHerald
    tenant: Tenant
    handler_id: int


@pytest.fixture(scope="module")
def world(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    server = start_in_process(
        tmp_path_factory.mktemp("input") / "herald",
        env={"HERALD_DELIVERY_ENABLED": "false", "HERALD_ALLOW_PRIVATE_TARGETS": "true"},
        database_url=module_database_url,
    )
    try:
        tenant = make_tenant(server, "Table Co", *ALL, "ingest:emnify", "ingest:stacuity")
        with server.client(tenant.token) as client:
            created = client.post(
                "/event_handler", json={"name": "h", "url": "http://127.0.0.1:9/"}
            )
            assert created.status_code == 201, created.text
        yield World(server, tenant, created.json()["id"])
    finally:
        server.stop()


def _named(body: dict[str, Any]) -> list[str]:
    """The fields a problem names, or those of the records an ingest answer quarantined."""
    errors = [*body.get("errors", [])]
    for record in body.get("records", []):
        errors += record.get("errors", [])
    return [str(error.get("field")) for error in errors]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_is_a_4xx_naming_the_field(world: World, case: Case, figures: Figures) -> None:
    with world.server.client(world.tenant.token) as client:
        response = client.request(
            case.method,
            case.path.format(handler=world.handler_id),
            params=case.params,
            json=case.json,
            headers=case.headers,
        )
        body = response.json()
        if case.path.startswith("/ingest/") and response.status_code == 200:
            # a provider's record Herald cannot use is quarantined, not refused (issue 16)
            assert [r["status"] for r in body["records"]] == ["quarantined"], body
        else:
            assert response.status_code in case.statuses, response.text
            assert response.headers["content-type"] == "application/problem+json"
        assert case.field in _named(body) or case.field in body.get("detail", ""), body
        if response.status_code == 403:
            assert body["title"] == "Forbidden"
        assert client.get("/event", params={"per_page": 1}).status_code == 200  # still serving
    figures.add("input.table_cases")


def test_a_stacuity_endpoint_id_that_is_no_number_names_the_endpoint(world: World) -> None:
    """``endpointId: "²"`` was a 500 (``"²".isdigit()``, then ``int`` refused it)."""
    envelope = {
        "eventId": "st-1",
        "eventTime": format_ms(to_ms(datetime.now(UTC))),
        "eventType": "endpointauthenticated_v1",
        "endpointId": "²",
    }
    with world.server.client(world.tenant.token) as client:
        response = client.post("/ingest/stacuity", json=envelope)
        assert response.status_code == 200, response.text
        stored = client.get(f"/event/{response.json()['ids'][0]}").json()
    assert stored["target"] == {"type": "endpoint", "id": "²"}
    assert stored["endpoint"] == {"name": "²"}  # no number: how Stacuity names the endpoint


def test_the_edges_of_the_range_are_taken_and_written_with_four_digit_years(
    world: World,
) -> None:
    """Regression: years before 1000 were served as ``1-01-01T…``, which the parser refused;
    the range's edges are accepted in a query, and an offset is written in UTC."""
    now = datetime.now(UTC).replace(microsecond=0)
    local = now.astimezone(timezone(timedelta(hours=2))).isoformat()
    served = format_ms(to_ms(now))
    with world.server.client(world.tenant.token) as client:
        created = client.post("/event", json={"event_type": {"id": 10001}, "timestamp": local})
        assert created.status_code == 201, created.text
        assert created.json()["timestamp"] == served
        edges = {"from": "1970-01-01T00:00:00Z", "until": "9999-12-31T23:59:59.999Z"}
        listed = client.get("/event", params=edges)
        assert listed.status_code == 200, listed.text
        assert served in [event["timestamp"] for event in listed.json()]


@pytest.mark.parametrize("last_event_id", [str(HUGE), "0_0", "-1", "1e3"])
def test_a_bad_last_event_id_is_a_400(world: World, last_event_id: str) -> None:
    """Regression: ``99999999999999999999999`` answered 500, ``0_0`` resumed as 0."""
    headers = {"Last-Event-ID": last_event_id}
    with (
        world.server.client(world.tenant.token) as client,
        client.stream("GET", "/event/stream", headers=headers, timeout=10) as response,
    ):
        assert response.status_code == 400
        response.read()
        assert "Last-Event-ID" in _named(response.json())


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("HEAD", "/api/v1/event", "GET, POST"),
        ("PUT", "/api/v1/event", "GET, POST"),
        ("DELETE", "/api/v1/event/1", "GET"),
        ("PUT", "/api/v1/event_handler/1", "DELETE, GET, PATCH"),
        ("OPTIONS", "/api/v1/event/stats", "GET"),
        ("TRACE", "/api/v1/event_handler", "GET, POST"),
        ("HEAD", "/health", "GET"),
        ("GET", "/api/v1/ingest/rejected/retry", "POST"),  # not the record "retry"
        ("OPTIONS", "/api/v1/ingest/rejected/7", "DELETE, GET"),
    ],
)
def test_other_methods_are_405_with_allow(world: World, method: str, path: str, allow: str) -> None:
    headers = {"Authorization": f"Bearer {world.tenant.token}"}
    response = httpx.request(method, world.server.url + path, headers=headers, timeout=30)
    assert response.status_code == 405
    assert response.headers["Allow"] == allow
    if method != "HEAD":
        assert response.headers["content-type"] == "application/problem+json"


def test_unknown_api_paths_are_404_problems(world: World) -> None:
    response = httpx.get(f"{world.server.url}/api/v1/nothing-here", timeout=30)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("token", "revoke", str(HUGE)), "invalid value"),
        (("org", "create", "x", "--id", str(HUGE)), "invalid value"),
        (("token", "create", "--org", str(HUGE), "-p", "event:read"), "invalid value"),
        (("org", "create", ""), "name"),
        (("org", "create", "   "), "name"),
        (("org", "create", "x" * 257), "name"),
    ],
)
def test_cli_bad_arguments_are_messages(world: World, args: tuple[str, ...], message: str) -> None:
    result = world.server.cli(*args, "--database", world.server.database_url, check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert message in (result.stderr + result.stdout).lower()


def test_cli_does_not_create_a_database_it_was_not_asked_to(tmp_path: Path) -> None:
    """Only serve, db migrate and simulate --backfill create a database; the rest say so."""
    missing = tmp_path / "nonexistent" / "dir" / "x.db"
    url = f"sqlite:///{missing}"
    status = _herald(tmp_path, "db", "status", "--database", url)
    assert status.returncode == 0 and "no database yet, schema version 0" in status.stdout
    for args in (("org", "list"), ("org", "create", "x"), ("token", "list"), ("worker",)):
        result = _herald(tmp_path, *args, "--database", url)
        assert result.returncode != 0, args
        assert "Traceback" not in result.stderr
        assert "no database" in result.stderr, result.stderr
        assert not missing.parent.parent.exists(), args
    assert _herald(tmp_path, "db", "migrate", "--database", url).returncode == 0
    assert missing.exists()
    assert _herald(tmp_path, "org", "list", "--database", url).returncode == 0


def _herald(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HERALD, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
