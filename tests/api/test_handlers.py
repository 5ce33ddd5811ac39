"""The event handler API: validation, permissions, tenancy, secrets, enable/disable."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from herald.store import open_store
from tests.delivery.receiver import Received, receiving, start_delivery_in_process, tenant
from tests.support.herald import Herald
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def herald(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Iterator[Herald]:
    server = start_delivery_in_process(
        tmp_path_factory.mktemp("handlers") / "herald", database_url=module_database_url
    )
    try:
        yield server
    finally:
        server.stop()


HOOK = "http://127.0.0.1:9/hook"


def test_crud_and_secret_shown_only_on_creation(herald: Herald) -> None:
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
        ({"name": "x", "url": HOOK, "filter": {"monikers": [""]}}, "filter.monikers"),
        ({"name": "x", "url": HOOK, "filter": "moniker:" + "m" * 1000}, "filter.moniker"),
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
    herald: Herald, body: dict[str, object], field: str
) -> None:
    _, token = tenant(herald)
    with herald.client(token) as client:
        response = client.post("/event_handler", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [error["field"] for error in response.json()["errors"]]


def test_a_url_with_control_characters_is_refused_on_update(herald: Herald) -> None:
    _, token = tenant(herald)
    with herald.client(token) as client:
        handler = client.post("/event_handler", json={"name": "x", "url": HOOK}).json()
        path = f"/event_handler/{handler['id']}"
        response = client.patch(path, json={"url": HOOK + "\r\nHost: elsewhere"})
        assert response.status_code == 422, response.text
        assert [error["field"] for error in response.json()["errors"]] == ["url"]
        assert client.get(path).json()["url"] == HOOK


def test_permissions(herald: Herald) -> None:
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


def test_another_tenants_handler_is_not_found(herald: Herald) -> None:
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


def test_internal_token_names_the_organisation(herald: Herald) -> None:
    organisation, _ = tenant(herald)
    with herald.client(herald.admin_token) as client:
        missing = client.post("/event_handler", json={"name": "h", "url": HOOK})
        assert missing.status_code == 422
        assert missing.json()["errors"][0]["field"] == "organisation_id"
        body = {"name": "h", "url": HOOK, "organisation_id": organisation}
        assert client.post("/event_handler", json=body).status_code == 201


def test_private_targets_refused_unless_allowed(tmp_path: Path) -> None:
    server = start_delivery_in_process(tmp_path / "strict", HERALD_ALLOW_PRIVATE_TARGETS="false")
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
def test_a_malformed_url_is_answered_with_a_sentence(herald: Herald, url: str, reason: str) -> None:
    _, token = tenant(herald)
    with herald.client(token) as client:
        response = client.post("/event_handler", json={"name": "x", "url": url})
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "url" and error["reason"].startswith(reason), error
    assert "pattern" not in response.text and "Value error" not in response.text


def test_a_replay_from_a_word_says_what_time_is_expected(herald: Herald) -> None:
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
    herald: Herald, retry_after: str
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


def test_one_test_send_per_handler_at_a_time(herald: Herald) -> None:
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
    server = start_delivery_in_process(tmp_path / "limit", HERALD_MAX_HANDLERS_PER_ORGANISATION="2")
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


def test_lag_counts_only_the_events_the_filter_selects(herald: Herald) -> None:
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


def test_a_moniker_no_catalogue_knows_selects_like_any_other(herald: Herald) -> None:
    """As ``q=moniker:`` does: a Stacuity moniker the catalogue does not know is the record's
    moniker, so a handler may filter on it (in the q form and the old shape)."""
    organisation, token = tenant(herald, "unknown monikers")
    ingest = herald.create_token(organisation, "ingest:stacuity")
    envelopes = [
        {"eventId": f"um-{i}", "eventType": moniker, "accountId": "a-1", "detail": {}}
        for i, moniker in enumerate(["brandnewthing_v1", "endpointdatasessioncreated_v1"])
    ]
    with herald.client(token) as client:
        handlers = [
            client.post(
                "/event_handler",
                json={"name": "new", "url": HOOK, "filter": wanted, "enabled": False},
            )
            for wanted in ("moniker:brandnewthing_v1", {"monikers": ["brandnewthing_v1"]})
        ]
        assert [h.status_code for h in handlers] == [201, 201], [h.text for h in handlers]
        assert [h.json()["filter"] for h in handlers] == ["moniker:brandnewthing_v1"] * 2
        with herald.client(ingest) as writer:
            answer = writer.post("/ingest/stacuity", json=envelopes)
            assert answer.json()["stored"] == 2, answer.text
        for handler in handlers:
            status = client.get(f"/event_handler/{handler.json()['id']}/status").json()
            assert status["lag_events"] == 1


# -- receiver credentials, custom headers, timeout, the Stacuity envelope (#34 point 5) --


def _raw_credentials(database_url: str, handler_id: int) -> str | None:
    """The handler's credentials column as the database holds it."""
    store = open_store(database_url, migrate=False)
    try:
        row = store.read(  # type: ignore[attr-defined]
            lambda c: c.execute(
                f"SELECT credentials FROM handlers WHERE id = {int(handler_id)}"
            ).fetchone()
        )
    finally:
        store.close()
    value: str | None = row[0]
    return value


def test_a_webhook_authenticates_to_its_receiver_with_its_own_headers(
    herald: Herald,
) -> None:
    organisation, token = tenant(herald)
    bearer = "s3cr3t-receiver-token"
    with receiving() as receiver, herald.client(token) as client:
        body = {
            "name": "stacuity-style",
            "url": receiver.url,
            "format": "stacuity",
            "credentials": {"token": bearer},
            "settings": {
                "headers": {"X-Tenant": "acme", "X-Api-Key-Id": "fleet-a"},
                "timeout_seconds": 5,
            },
        }
        created = client.post("/event_handler", json=body)
        assert created.status_code == 201, created.text
        handler = created.json()
        path = f"/event_handler/{handler['id']}"
        assert handler["settings"] == {
            "headers": {"X-Tenant": "acme", "X-Api-Key-Id": "fleet-a"},
            "timeout_seconds": 5.0,
        }
        assert handler["credentials_set"] is True and handler["format"] == "stacuity"
        shown = client.get(path)
        assert bearer not in shown.text and bearer not in created.text
        sealed = _raw_credentials(herald.database_url, handler["id"])
        assert sealed is not None and sealed.startswith("fernet:") and bearer not in sealed

        event = {
            "moniker": "endpointlocationupdated_v1",
            "endpoint": {"id": 4711},
            "detail": {"country": {"mcc": "234"}},
            "organisation": {"id": organisation},
        }
        stored = client.post("/event", json=event)
        assert stored.status_code == 201, stored.text
        receiver.wait_for(lambda: len(receiver.delivered()) == 1)
        [request] = receiver.delivered()
        assert request.headers["authorization"] == f"Bearer {bearer}"
        assert request.headers["x-tenant"] == "acme"
        assert request.headers["x-api-key-id"] == "fleet-a"
        Webhook(handler["secret"]).verify(request.body, request.headers)  # still signed
        envelope = request.json()
        record = envelope.pop("herald")
        event_id = str(record["id"])
        assert envelope == {
            "eventId": event_id,
            "eventTime": record["timestamp"],
            "eventType": "endpointlocationupdated_v1",
            "accountId": str(organisation),
            "endpointId": "4711",
            "detail": {"country": {"mcc": "234"}},
        }
        assert record["event_type"]["id"] == 2 and record["endpoint"]["id"] == 4711

        # Basic instead of Bearer; headers replaced ({} removes them), the timeout kept
        change = {
            "credentials": {"username": "herald", "password": "pa:ss"},
            "settings": {"headers": {}},
        }
        changed = client.patch(path, json=change)
        assert changed.status_code == 200, changed.text
        assert changed.json()["settings"] == {"timeout_seconds": 5.0}
        answer = client.post(f"{path}/test")
        assert answer.json()["outcome"] == "delivered", answer.text
        test_request = receiver.delivered()[-1]
        expected = "Basic " + base64.b64encode(b"herald:pa:ss").decode()
        assert test_request.headers["authorization"] == expected
        assert "x-tenant" not in test_request.headers
        assert test_request.json()["eventType"] == "herald.0"  # a type without a moniker

        # no credentials: no Authorization header at all
        assert client.patch(path, json={"credentials": {}}).json()["credentials_set"] is False
        assert client.post(f"{path}/test").json()["outcome"] == "delivered"
        assert "authorization" not in receiver.delivered()[-1].headers


@pytest.mark.parametrize(
    ("settings", "credentials", "field"),
    [
        ({"headers": {"Host": "elsewhere"}}, None, "settings.headers.Host"),
        ({"headers": {"authorization": "Bearer x"}}, None, "settings.headers.authorization"),
        ({"headers": {"Transfer-Encoding": "chunked"}}, None, "settings.headers.Transfer-Encoding"),
        ({"headers": {"Connection": "close"}}, None, "settings.headers.Connection"),
        ({"headers": {"Content-Length": "1"}}, None, "settings.headers.Content-Length"),
        ({"headers": {"webhook-signature": "v1,x"}}, None, "settings.headers.webhook-signature"),
        ({"headers": {"X-A": "1", "x-a": "2"}}, None, "settings.headers.x-a"),
        ({"headers": {"Bad Name": "1"}}, None, "settings.headers"),
        ({"headers": {"X-Split": "a\r\nX-Injected: 1"}}, None, "settings.headers"),
        ({"headers": {"X-Nul": "a\x00"}}, None, "settings.headers"),
        ({"headers": {"X-Long": "v" * 1025}}, None, "settings.headers"),
        ({"headers": {f"X-H{n}": "v" for n in range(11)}}, None, "settings.headers"),
        ({"timeout_seconds": 0.1}, None, "settings.timeout_seconds"),
        ({"timeout_seconds": 61}, None, "settings.timeout_seconds"),
        ({"timeout_seconds": "5"}, None, "settings.timeout_seconds"),
        ({"topic": "x"}, None, "settings.topic"),
        (None, {"token": "t", "username": "u", "password": "p"}, "credentials.token"),
        (None, {"username": "u"}, "credentials.password"),
        (None, {"password": "p"}, "credentials.username"),
        (None, {"username": "a:b", "password": "p"}, "credentials.username"),
        (None, {"token": "t\r\nX-Injected: 1"}, "credentials.token"),
        (None, {"access_key_id": "k"}, "credentials.access_key_id"),
    ],
)
def test_bad_headers_timeouts_and_receiver_credentials_are_refused(
    herald: Herald,
    settings: dict[str, object] | None,
    credentials: dict[str, str] | None,
    field: str,
) -> None:
    _, token = tenant(herald)
    body: dict[str, object] = {"name": "x", "url": HOOK}
    if settings is not None:
        body["settings"] = settings
    if credentials is not None:
        body["credentials"] = credentials
    with herald.client(token) as client:
        response = client.post("/event_handler", json=body)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        fields = [error["field"] for error in response.json()["errors"]]
        assert any(name.startswith(field) for name in fields), fields
        assert "Traceback" not in response.text and "t\r\n" not in response.text
        handler = client.post("/event_handler", json={"name": "x", "url": HOOK}).json()
        patched = client.patch(f"/event_handler/{handler['id']}", json=body | {"name": "y"})
        assert patched.status_code == 422, patched.text
        assert client.get(f"/event_handler/{handler['id']}").json()["name"] == "x"


def test_a_handler_times_out_by_its_own_timeout(herald: Herald) -> None:
    _, token = tenant(herald)
    release = threading.Event()

    def stalled(_: Received) -> tuple[int, dict[str, str]]:
        release.wait(15)  # far past the handler's timeout, inside the server's (10 s)
        return 200, {}

    try:
        with receiving(stalled) as receiver, herald.client(token) as client:
            body = {"name": "x", "url": receiver.url, "settings": {"timeout_seconds": 0.5}}
            handler = client.post("/event_handler", json=body).json()
            answer = client.post(f"/event_handler/{handler['id']}/test").json()
            assert (answer["status"], answer["outcome"], answer["error"]) == (
                None,
                "retry",
                "timeout",
            )
            release.set()
    finally:
        release.set()


def caught_up(client: httpx.Client, path: str) -> None:
    """Wait until the handler at ``path`` has recorded every event it was sent (no lag)."""
    wait_until(
        lambda: client.get(f"{path}/status").json()["lag_events"] == 0,
        20,
        lambda: f"status {client.get(f'{path}/status').json()}",
    )


def test_pause_and_resume_keep_the_backlog_in_big_batches(herald: Herald) -> None:
    organisation, token = tenant(herald)
    with receiving() as receiver, herald.client(token) as client:
        body = {"name": "bulk", "url": receiver.url, "batch": {"max_events": 10_000}}
        created = client.post("/event_handler", json=body)
        assert created.status_code == 201, created.text
        handler = created.json()
        assert handler["batch"]["max_events"] == 10_000
        path = f"/event_handler/{handler['id']}"

        def event(n: int) -> dict[str, object]:
            return {
                "event_type": {"id": 10001},
                "description": f"e{n}",
                "organisation": {"id": organisation},
            }

        first = client.post("/event", json=event(0))
        assert first.status_code == 201, first.text
        receiver.wait_for(lambda: len(receiver.delivered_ids()) == 1)
        caught_up(client, path)  # the cursor moves once the answer is recorded, just after
        cursor = client.get(f"{path}/status").json()["cursor_seq"]

        paused = client.patch(path, json={"enabled": False}).json()
        assert paused["enabled"] is False and paused["disabled_reason"] == "disabled by the user"
        for start in (1, 1001, 2001):  # a write holds 1,000 events at most
            stop = min(start + 1000, 2501)
            backlog = client.post("/event", json=[event(n) for n in range(start, stop)])
            assert backlog.status_code == 201, backlog.text
        status = client.get(f"{path}/status").json()
        assert (status["state"], status["lag_events"]) == ("disabled", 2500)
        assert status["cursor_seq"] == cursor  # kept where it stopped
        assert len(receiver.requests) == 1  # paused: nothing more sent

        # On PostgreSQL the log is read up to a safe watermark, which any open transaction
        # of the server holds back (under load, another test's): the backlog is one batch
        # once a reader can see all of it.
        with herald.store() as store:
            wait_until(lambda: len(store.log.read(cursor, 3000)) == 2500)
        resumed = client.patch(path, json={"enabled": True}).json()
        assert resumed["enabled"] is True and resumed["disabled_reason"] is None
        receiver.wait_for(lambda: len(receiver.delivered_ids()) == 2501)
        descriptions = [
            record["description"] for request in receiver.delivered() for record in request.json()
        ]
        assert descriptions == [f"e{n}" for n in range(2501)]  # in order, none lost, no gap
        assert len(receiver.delivered()[1].json()) == 2500  # the backlog as one batch
        caught_up(client, path)
