"""The event handler API: validation, permissions, tenancy, secrets, enable/disable."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.delivery.receiver import Received, receiving, start_delivery_server, tenant
from tests.support.server import HeraldServer


@pytest.fixture(scope="module")
def herald(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str
) -> Iterator[HeraldServer]:
    server = start_delivery_server(
        tmp_path_factory.mktemp("handlers") / "herald", database_url=module_database_url
    )
    try:
        yield server
    finally:
        server.stop()


HOOK = "http://127.0.0.1:9/hook"


def test_crud_and_secret_shown_only_on_creation(herald: HeraldServer) -> None:
    organisation, token = tenant(herald)
    with herald.client(token) as client:
        body = {"name": "billing", "url": HOOK, "format": "ndjson", "filter": {"severities": [2]}}
        created = client.post("/event_handler", json=body)
        assert created.status_code == 201, created.text
        handler = created.json()
        assert handler["secret"].startswith("whsec_")
        assert handler["organisation"]["id"] == organisation and handler["retention_days"] == 3
        path = f"/event_handler/{handler['id']}"
        shown = client.get(path).json()
        assert "secret" not in shown and shown["filter"] == "severity:2"
        assert [h["id"] for h in client.get("/event_handler").json()] == [handler["id"]]

        disabled = client.patch(path, json={"enabled": False, "name": "renamed"}).json()
        assert disabled["enabled"] is False and disabled["name"] == "renamed"
        assert disabled["disabled_reason"] == "disabled by the user"
        assert client.get(f"{path}/status").json()["state"] == "disabled"
        enabled = client.patch(path, json={"enabled": True}).json()
        assert enabled["enabled"] is True and enabled["disabled_reason"] is None
        assert enabled["format"] == "ndjson" and enabled["filter"] == "severity:2"

        assert client.delete(path).status_code == 204
        assert client.get(path).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": HOOK}, "name"),
        ({"name": "x", "url": "ftp://example.com/"}, "url"),
        ({"name": "x", "url": HOOK, "format": "xml"}, "format"),
        ({"name": "x", "url": HOOK, "filter": {"monikers": ["nope_v1"]}}, "filter.monikers"),
        ({"name": "x", "url": HOOK, "filter": {"severities": [7]}}, "filter.severities"),
        ({"name": "x", "url": HOOK, "filter": {"colour": "red"}}, "filter.colour"),
        ({"name": "x", "url": HOOK, "batch": {"max_events": 0}}, "batch.max_events"),
        ({"name": "x", "url": HOOK + "\r\nX-Injected: 1"}, "url"),
        ({"name": "x", "url": HOOK + "/a b"}, "url"),
        ({"name": "x", "url": HOOK + "\t"}, "url"),
        ({"name": "x", "url": HOOK + "\x00"}, "url"),
        ({"name": "x", "url": "http://127.0.0.1:9\u2028/hook"}, "url"),
    ],
)
def test_bad_input_names_field_and_reason(
    herald: HeraldServer, body: dict[str, object], field: str
) -> None:
    _, token = tenant(herald)
    with herald.client(token) as client:
        response = client.post("/event_handler", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [error["field"] for error in response.json()["errors"]]


def test_a_url_with_control_characters_is_refused_on_update(herald: HeraldServer) -> None:
    _, token = tenant(herald)
    with herald.client(token) as client:
        handler = client.post("/event_handler", json={"name": "x", "url": HOOK}).json()
        path = f"/event_handler/{handler['id']}"
        response = client.patch(path, json={"url": HOOK + "\r\nHost: elsewhere"})
        assert response.status_code == 422, response.text
        assert [error["field"] for error in response.json()["errors"]] == ["url"]
        assert client.get(path).json()["url"] == HOOK


def test_permissions(herald: HeraldServer) -> None:
    organisation, manager = tenant(herald)
    reader = herald.create_token(organisation, "handler:read")
    events_only = herald.create_token(organisation, "event:read")
    with herald.client(manager) as client:
        handler = client.post("/event_handler", json={"name": "h", "url": HOOK}).json()
    with herald.client(reader) as client:
        assert client.get(f"/event_handler/{handler['id']}/status").status_code == 200
        assert client.get(f"/event_handler/{handler['id']}/delivery").status_code == 200
        assert client.post("/event_handler", json={"name": "h", "url": HOOK}).status_code == 403
        assert client.delete(f"/event_handler/{handler['id']}").status_code == 403
    with herald.client(events_only) as client:
        assert client.get("/event_handler").status_code == 403
    with herald.client() as client:
        assert client.get("/event_handler").status_code == 401


def test_another_tenants_handler_is_not_found(herald: HeraldServer) -> None:
    _, token_a = tenant(herald, "A")
    _, token_b = tenant(herald, "B")
    with herald.client(token_a) as a, herald.client(token_b) as b:
        handler = a.post("/event_handler", json={"name": "h", "url": HOOK}).json()
        path = f"/event_handler/{handler['id']}"
        for response in (
            b.get(path),
            b.get(f"{path}/status"),
            b.get(f"{path}/delivery"),
            b.patch(path, json={"enabled": False}),
            b.post(f"{path}/replay", json={"from": "2026-01-01T00:00:00Z"}),
            b.post(f"{path}/secret/rotate"),
            b.delete(path),
        ):
            assert response.status_code == 404, response.text
        assert handler["id"] not in [h["id"] for h in b.get("/event_handler").json()]
        other = b.post("/event_handler", json={"name": "h", "url": HOOK, "organisation_id": 1})
        assert other.status_code == 403


def test_internal_token_names_the_organisation(herald: HeraldServer) -> None:
    organisation, _ = tenant(herald)
    with herald.client(herald.admin_token) as client:
        missing = client.post("/event_handler", json={"name": "h", "url": HOOK})
        assert missing.status_code == 422
        assert missing.json()["errors"][0]["field"] == "organisation_id"
        body = {"name": "h", "url": HOOK, "organisation_id": organisation}
        assert client.post("/event_handler", json=body).status_code == 201


def test_private_targets_refused_unless_allowed(tmp_path: Path) -> None:
    server = start_delivery_server(tmp_path / "strict", HERALD_ALLOW_PRIVATE_TARGETS="false")
    try:
        _, token = tenant(server)
        with server.client(token) as client:
            for url in (HOOK, "http://169.254.169.254/latest", "http://[::ffff:10.0.0.1]/"):
                response = client.post("/event_handler", json={"name": "h", "url": url})
                assert response.status_code == 422, url
                error = response.json()["errors"][0]
                assert error["field"] == "url"
                assert "start Herald with HERALD_ALLOW_PRIVATE_TARGETS=true" in error["reason"]
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/x?y#z", "scheme 'ftp' is not one Herald delivers to; use http,"),
        ("example.com/hook", "must be a URL with a scheme and a host"),
        ("https:///hook", "needs a host after https://"),
        ("https://example.com/a b", "must be printable ASCII without spaces"),
    ],
)
def test_a_malformed_url_is_answered_with_a_sentence(
    herald: HeraldServer, url: str, reason: str
) -> None:
    _, token = tenant(herald)
    with herald.client(token) as client:
        response = client.post("/event_handler", json={"name": "x", "url": url})
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "url" and error["reason"].startswith(reason), error
    assert "pattern" not in response.text and "Value error" not in response.text


def test_a_replay_from_a_word_says_what_time_is_expected(herald: HeraldServer) -> None:
    _, token = tenant(herald)
    with herald.client(token) as client:
        handler = client.post("/event_handler", json={"name": "x", "url": HOOK}).json()
        response = client.post(f"/event_handler/{handler['id']}/replay", json={"from": "yesterday"})
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {"field": "from", "reason": "must be an ISO 8601 time such as 2026-11-01T00:00:00Z"}
    ]


@pytest.mark.parametrize("retry_after", ["²", "Fri, 01 Jan 99999999999999999999 00:00:00 GMT"])
def test_the_test_send_reports_a_hostile_receiver_rather_than_failing(
    herald: HeraldServer, retry_after: str
) -> None:
    _, token = tenant(herald)
    with receiving(lambda _: (503, {"Retry-After": retry_after})) as receiver:
        with herald.client(token) as client:
            handler = client.post("/event_handler", json={"name": "x", "url": receiver.url}).json()
            path = f"/event_handler/{handler['id']}"
            answer = client.post(f"{path}/test")
            assert answer.status_code == 200, answer.text
            assert (answer.json()["status"], answer.json()["outcome"]) == (503, "retry")
            [attempt] = client.get(f"{path}/delivery").json()
            assert (attempt["kind"], attempt["error"]) == ("test", "HTTP 503")
        assert len(receiver.requests) == 1


def test_one_test_send_per_handler_at_a_time(herald: HeraldServer) -> None:
    _, token = tenant(herald)
    arrived, release = threading.Event(), threading.Event()

    def slow(_: Received) -> tuple[int, dict[str, str]]:
        arrived.set()
        release.wait(10)
        return 200, {}

    with receiving(slow) as receiver, herald.client(token) as client:
        handler = client.post("/event_handler", json={"name": "x", "url": receiver.url}).json()
        path = f"/event_handler/{handler['id']}/test"
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(client.post, path)
            assert arrived.wait(10)
            second = client.post(path)
            release.set()
            assert first.result().status_code == 200
        assert second.status_code == 429 and second.headers["retry-after"] == "1"
        assert client.post(path).status_code == 200  # free again once the first is done


def test_a_tenant_cannot_create_handlers_past_its_limit(tmp_path: Path) -> None:
    server = start_delivery_server(tmp_path / "limit", HERALD_MAX_HANDLERS_PER_ORGANISATION="2")
    try:
        _, token = tenant(server)
        _, other = tenant(server, "Bolt")
        with server.client(token) as client:
            made = [
                client.post("/event_handler", json={"name": f"h{n}", "url": HOOK}) for n in range(2)
            ]
            assert [r.status_code for r in made] == [201, 201]
            refused = client.post("/event_handler", json={"name": "h3", "url": HOOK})
            assert refused.status_code == 409, refused.text
            problem = refused.json()
            assert problem["title"] == "Limit reached"
            assert "HERALD_MAX_HANDLERS_PER_ORGANISATION=2" in problem["detail"]
            with server.client(other) as theirs:  # another tenant's room is its own
                assert (
                    theirs.post("/event_handler", json={"name": "b", "url": HOOK}).status_code
                    == 201
                )
            assert client.delete(f"/event_handler/{made[0].json()['id']}").status_code == 204
            assert (
                client.post("/event_handler", json={"name": "h4", "url": HOOK}).status_code == 201
            )
    finally:
        server.stop()


def test_lag_counts_only_the_events_the_filter_selects(herald: HeraldServer) -> None:
    organisation, token = tenant(herald)
    with herald.client(token) as client:
        body = {"name": "warnings", "url": HOOK, "filter": "severity:warn", "enabled": False}
        handler = client.post("/event_handler", json=body).json()
        status = client.get(f"/event_handler/{handler['id']}/status").json()
        assert (status["lag_events"], status["lag_events_capped"]) == (0, False)
        severities = [1, 0, 1, 2, 1, 0]
        events = [
            {
                "event_type": {"id": 10001},
                "event_severity": {"id": s},
                "organisation": {"id": organisation},
            }
            for s in severities
        ]
        assert client.post("/event", json=events).status_code == 201
        status = client.get(f"/event_handler/{handler['id']}/status").json()
        assert status["lag_events"] == severities.count(1)
        assert status["lag_seconds"] >= 0 and status["lag_events_capped"] is False
