"""Security: tenant isolation, refused credentials, rate limits, secrets, security events."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import orjson
import pytest

from herald.api.app import create_app
from herald.api.ratelimit import TokenBuckets
from tests.reliability.conftest import Tenant, make_tenant
from tests.reliability.figures import Figures
from tests.support.inproc import InProcessHerald, start_in_process
from tests.support.metrics import increase, scrape
from tests.support.records import emnify_record

JWT_SECRET = "reliability-suite-secret-" + "x" * 32
A_SECRET = "A's secret business"
A_ICCID = "8988280666000000077"  # A's SIM, which the 1NCE-shaped reads look up by ICCID


@dataclass
class World:
    server: InProcessHerald
    a: Tenant
    b: Tenant
    event_id: int
    handler_id: int
    handler_secret: str
    rejected_id: int  # a record of A's ingest quarantine
    rule_id: int  # A's (disabled) rule
    a_count: int | None = None  # A's events before the isolation matrix
    a_posted: int = 0  # and A's events written during it


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Two tenants; A has an event on endpoint/sim/user 7, a (disabled) handler and rule."""
    server = start_in_process(
        tmp_path_factory.mktemp("security") / "herald",
        env={
            "HERALD_JWT_SECRET": JWT_SECRET,
            "HERALD_ALLOW_PRIVATE_TARGETS": "true",
            "HERALD_AUDIT_EVENTS": "true",
            "HERALD_STREAM_HEARTBEAT_SECONDS": "0.2",
        },
    )
    try:
        a, b = make_tenant(server, "Tenant A"), make_tenant(server, "Tenant B")
        with server.client(a.token) as client:
            event = client.post(
                "/event",
                json={
                    "event_type": {"id": 10001},
                    "description": A_SECRET,
                    "endpoint": {"id": 7},
                    "sim": {"id": 7, "iccid": A_ICCID},
                    "user": {"id": 7},
                },
            )
            handler = client.post(
                "/event_handler",
                json={"name": "A hook", "url": "http://127.0.0.1:9/hook", "enabled": False},
            )
            rule = client.post("/rule", json={**RULE, "name": "Rule of tenant A", "enabled": False})
        assert event.status_code == 201 and handler.status_code == 201, handler.text
        assert rule.status_code == 201, rule.text
        with server.client(server.admin_token) as admin:
            broken = emnify_record("iso-0", alert="maybe", description=A_SECRET)
            ingested = admin.post(
                "/ingest/emnify", params={"organisation": a.organisation_id}, json=broken
            )
        assert ingested.json()["quarantined"] == 1, ingested.text
        yield World(
            server,
            a,
            b,
            event.json()["id"],
            handler.json()["id"],
            handler.json()["secret"],
            ingested.json()["records"][0]["rejected_id"],
            rule.json()["id"],
        )
    finally:
        server.stop()


EMNIFY_RECORD = emnify_record("iso-1", description="isolation")
RULE = {"name": "B rule", "condition": {"kind": "count", "count": 5, "window_seconds": 600}}
A_DAY_AGO = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
# A body for each operation that takes one; a new operation with a body must be added here.
BODIES: dict[str, Any] = {
    "POST /api/v1/authenticate": "own application token",
    "POST /api/v1/event": {"event_type": {"id": 10001}, "organisation": {"id": "A"}},
    "POST /api/v1/ingest/emnify": [EMNIFY_RECORD],
    "POST /api/v1/ingest/1nce": [{**EMNIFY_RECORD, "id": "iso-2"}],
    "POST /api/v1/ingest/stacuity": {
        "eventId": "iso-3",
        "eventType": "accountdepleted_v1",
        "accountId": "acc-b",
    },
    "POST /api/v1/event_handler": {"name": "B hook", "url": "http://127.0.0.1:9/b"},
    "PATCH /api/v1/event_handler/{handler_id}": {"name": "taken over", "enabled": True},
    "POST /api/v1/event_handler/{handler_id}/replay": {"from": "2020-01-01T00:00:00Z"},
    "PUT /api/v1/organisation/{organisation_id}/device_events": {"enabled": True},
    "POST /api/v1/rule": {**RULE, "organisation_id": "A"},
    "PATCH /api/v1/rule/{rule_id}": {"name": "taken over", "enabled": True},
    "POST /api/v1/rule/preview": {**RULE, "from": A_DAY_AGO, "organisation_id": "A"},
}


def _operations() -> list[str]:
    """Every operation of the OpenAPI document, ``METHOD /path``; deletions last."""
    spec = create_app().openapi()
    found = [f"{method.upper()} {path}" for path, ops in spec["paths"].items() for method in ops]
    return sorted(found, key=lambda operation: operation.startswith("DELETE"))


OPERATIONS = _operations()


@pytest.fixture(scope="module")
def b_credentials(world: World) -> dict[str, str]:
    """B's application token and a JWT issued for it."""
    with world.server.client() as client:
        issued = client.post("/authenticate", json={"application_token": world.b.token})
    assert issued.status_code == 200, issued.text
    return {"token": world.b.token, "jwt": issued.json()["auth_token"]}


def _a_count(w: World) -> int:
    with w.server.client(w.a.token) as client:
        response = client.get("/event", params={"per_page": 1})
    assert response.status_code == 200, response.text
    return int(response.headers["X-Total-Count"])


def _leaks(w: World, text: str, url: str) -> list[str]:
    """A's things in a response to B (the ids B put in the URL may be echoed)."""
    markers = (
        A_SECRET,
        "A hook",
        "Rule of tenant A",
        "Tenant A",
        "127.0.0.1:9/hook",
        str(w.event_id),
    )
    found = [marker for marker in (*markers, w.handler_secret) if marker in text]
    return [marker for marker in found if marker not in url]


def _path(w: World, template: str) -> str:
    values = {
        "event_id": w.event_id,
        "handler_id": w.handler_id,
        "rejected_id": w.rejected_id,
        "rule_id": w.rule_id,
        "organisation_id": w.a.organisation_id,
        "endpoint_id": 7,
        "sim_id": 7,
        "user_id": 7,
        "iccid": A_ICCID,
    }
    names = re.findall(r"{(\w+)}", template)
    unknown = [name for name in names if name not in values]
    assert not unknown, f"{template}: teach the isolation matrix A's value of {unknown}"
    return template.format(**{name: values[name] for name in names})


def _stream(client: httpx.Client, w: World, url: str, **kwargs: Any) -> tuple[int, str]:
    """B's stream while A writes: the status and what arrived in a second."""
    seen = b""
    with client.stream("GET", url, timeout=5, **kwargs) as response:
        chunks = response.iter_raw()
        if response.status_code == 200:
            seen += next(chunks)  # the stream has started
            with w.server.client(w.a.token) as a:
                live = {"event_type": {"id": 10001}, "description": A_SECRET + " (live)"}
                assert a.post("/event", json=live).status_code == 201
            w.a_posted += 1
            deadline = time.monotonic() + 1
            while time.monotonic() < deadline:
                seen += next(chunks)  # heartbeats every 0.2 s keep this moving
        else:
            seen = response.read()
    return response.status_code, seen.decode(errors="replace")


@pytest.mark.parametrize("credential", ["token", "jwt"])
@pytest.mark.parametrize("operation", OPERATIONS)
def test_another_tenants_credential_gets_404_or_403_never_data(
    world: World, b_credentials: dict[str, str], operation: str, credential: str, figures: Figures
) -> None:
    """Every operation of the spec, as tenant B aiming at A's things: refused, or B's own."""
    method, template = operation.split(" ")
    if world.a_count is None:
        world.a_count = _a_count(world)
    url = world.server.url + _path(world, template)
    body = BODIES.get(f"{method} {template}")
    if method in ("POST", "PATCH", "PUT") and body is None:
        spec = create_app().openapi()["paths"][template][method.lower()]
        assert "requestBody" not in spec, f"{operation}: teach the isolation matrix a body"
    if body == "own application token":
        body = {"application_token": world.b.token}
    elif isinstance(body, dict) and body.get("organisation") == {"id": "A"}:
        body = {**body, "organisation": {"id": world.a.organisation_id}}
    elif isinstance(body, dict) and body.get("organisation_id") == "A":
        body = {**body, "organisation_id": world.a.organisation_id}
    a = world.a.organisation_id
    # plain; scoped to A by parameter; by filter, replaying the log from its start
    variants: list[tuple[dict[str, Any], dict[str, str]]] = [
        ({}, {}),
        ({"organisation": a}, {}),
        ({"q": f"organisation:{a}"}, {"Last-Event-ID": "0"}),
    ]
    problems = []
    with httpx.Client(headers={"Authorization": f"Bearer {b_credentials[credential]}"}) as client:
        for params, headers in variants:
            if template.endswith("/stream"):
                status, text = _stream(client, world, url, params=params, headers=headers)
            else:
                response = client.request(method, url, params=params, headers=headers, json=body)
                status, text = response.status_code, response.text
            figures.add("security.isolation_cases")
            leaked = _leaks(world, text, url)
            if status >= 500 or leaked or (status >= 300 and status not in (403, 404, 422)):
                problems.append(f"{params} {headers}: {status} {leaked} {text[:200]}")
    assert problems == [], f"{operation} as B ({credential})"
    assert _a_count(world) == world.a_count + world.a_posted  # nothing written into A
    with world.server.client(world.a.token) as client:  # and A's handler and rule untouched
        handler = client.get(f"/event_handler/{world.handler_id}").json()
        assert (handler["name"], handler["enabled"]) == ("A hook", False)
        rule = client.get(f"/rule/{world.rule_id}").json()
        assert (rule["name"], rule["enabled"]) == ("Rule of tenant A", False)


def test_the_stream_probe_sees_the_owners_own_events(world: World) -> None:
    """The matrix's stream probe would see a leak: A's own stream shows A's live event."""
    with httpx.Client(headers={"Authorization": f"Bearer {world.a.token}"}) as client:
        status, text = _stream(client, world, f"{world.server.url}/api/v1/event/stream")
    assert status == 200
    assert A_SECRET + " (live)" in text


def test_the_matrix_covers_the_served_spec(world: World) -> None:
    served = httpx.get(f"{world.server.url}/api/openapi.json", timeout=10).json()
    operations = {f"{m.upper()} {path}" for path, ops in served["paths"].items() for m in ops}
    assert operations == set(OPERATIONS)
    assert {"GET /api/v1/event/stream", "POST /api/v1/ingest/emnify"} <= operations


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_expired_forged_tampered_and_revoked_tokens_are_refused(
    world: World, figures: Figures
) -> None:
    server = world.server
    organisation = server.create_org("Rotating Co")
    doomed = server.create_token(organisation, "event:read")
    with server.client() as client:
        good_jwt = client.post("/authenticate", json={"application_token": doomed}).json()[
            "auth_token"
        ]
    token_id = int(jwt.decode(good_jwt, options={"verify_signature": False})["sub"])
    now = int(time.time())
    claims = {"iss": "herald", "sub": str(token_id), "iat": now - 7200, "exp": now - 3600}
    header, payload, signature = good_jwt.split(".")
    tampered_claims = {**orjson.loads(base64.urlsafe_b64decode(payload + "==")), "sub": "1"}
    bad = {
        "expired": jwt.encode(claims, JWT_SECRET, algorithm="HS256"),
        "forged": jwt.encode(
            {**claims, "exp": now + 3600}, "not-the-secret-" + "y" * 40, algorithm="HS256"
        ),
        "tampered": f"{header}.{_b64(orjson.dumps(tampered_claims))}.{signature}",
        "alg none": _b64(orjson.dumps({"alg": "none", "typ": "JWT"})) + f".{payload}.",
        "unknown app token": "hrd_" + "A" * 43,
        "garbage": "not a token at all",
        "empty bearer": "",
    }
    server.cli("token", "revoke", str(token_id), "--database", server.database_url)
    bad["revoked app token"] = doomed
    bad["JWT of a revoked token"] = good_jwt
    accepted = []
    for name, credential in bad.items():
        with server.client(credential or None) as client:
            response = client.get("/event")
            if response.status_code != 401:
                accepted.append(f"{name}: {response.status_code}")
            figures.add("security.bad_credentials_refused", response.status_code == 401)
    assert accepted == []
    # the failures with a provable token are events of its organisation, secret-free
    with server.client(world.a.token) as client:
        assert client.get("/event", params={"type": 7}).json() == []  # A saw none of them
    events = _events_of(server, organisation)
    types = [e["event_type"]["id"] for e in events]
    assert 2001 in types and 2002 in types and 7 in types
    for event in events:
        assert doomed not in orjson.dumps(event).decode()
    figures.add("security.security_event_types_checked", 3)


def _events_of(server: InProcessHerald, organisation: int) -> list[dict[str, Any]]:
    with server.client(server.admin_token) as client:
        response = client.get("/event", params={"organisation": organisation, "per_page": 1000})
        assert response.status_code == 200, response.text
        events: list[dict[str, Any]] = response.json()
        return events


def test_handler_changes_are_security_events(world: World) -> None:
    types = [e["event_type"]["id"] for e in _events_of(world.server, world.a.organisation_id)]
    assert 2003 in types  # A's handler was created


def test_secrets_absent_from_logs_and_lists(world: World, figures: Figures) -> None:
    server = world.server
    with server.client(world.a.token) as client:
        listed = (
            client.get("/event_handler").text
            + client.get(f"/event_handler/{world.handler_id}").text
        )
    tokens = server.cli("token", "list", "--database", server.database_url).stdout
    log = server.log()
    secrets = {
        "tenant A token": world.a.token,
        "tenant B token": world.b.token,
        "admin token": server.admin_token,
        "handler secret": world.handler_secret,
        "JWT secret": JWT_SECRET,
    }
    for name, secret in secrets.items():
        assert secret not in log, f"{name} in the server log"
        assert secret not in tokens, f"{name} in token list"
        if name != "JWT secret":
            assert secret not in listed, f"{name} in the handler list"
        figures.add("security.secrets_checked")


def test_rate_limit_answers_429_with_retry_after(tmp_path: Any, figures: Figures) -> None:
    server = start_in_process(
        tmp_path / "herald",
        # a token per 100 s: no refill between the requests, however slow the machine
        env={"HERALD_RATE_LIMIT_PER_SECOND": "0.01", "HERALD_RATE_LIMIT_BURST": "3"},
    )
    try:
        before = scrape(server)
        tenant = make_tenant(server, "Busy Co", "event:read")
        with server.client(tenant.token) as client:
            statuses = [client.get("/event").status_code for _ in range(5)]
            limited = client.get("/event")
        assert statuses == [200, 200, 200, 429, 429]
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.headers["content-type"] == "application/problem+json"
        with server.client(server.admin_token) as other:  # another token has its own bucket
            assert other.get("/event").status_code == 200
        assert increase(server, before, "herald_rate_limited_total") == 3  # each 429 counted
        figures.add("security.rate_limited_requests", statuses.count(429) + 1)
    finally:
        server.stop()


def test_rate_limit_follows_the_token_not_the_header_spelling(
    tmp_path: Any, figures: Figures
) -> None:
    """Regression: the bucket was keyed on the raw header, so ``bearer X``, ``BEARER X`` and
    ``Bearer  X`` each had a fresh one, and bogus tokens never met a 429."""
    server = start_in_process(
        tmp_path / "herald",
        env={"HERALD_RATE_LIMIT_PER_SECOND": "0.001", "HERALD_RATE_LIMIT_BURST": "3"},
    )
    try:
        before = scrape(server)
        tenant = make_tenant(server, "Spelling Co", "event:read")
        url = f"{server.url}/api/v1/event"
        jwt_token = httpx.post(
            f"{server.url}/api/v1/authenticate",
            json={"application_token": tenant.token},
            timeout=30,
        ).json()["auth_token"]
        spellings = [
            f"Bearer {tenant.token}",
            f"bearer {tenant.token}",
            f"BEARER {tenant.token}",
            f"Bearer  {tenant.token}",
            f"Bearer {jwt_token}",  # another credential of the same token: the same bucket
        ]
        statuses = [
            httpx.get(url, headers={"Authorization": spelling}, timeout=30).status_code
            for spelling in spellings
        ]
        assert statuses == [200, 200, 200, 429, 429]

        bogus = [f"Bearer hrd_guess{i}" for i in range(4)] + [
            "bearer forged.jwt.value",
            "Bearer x",
            "Basic dXNlcjpwYXNz",
            "",
        ]
        guessed = [
            httpx.get(url, headers={"Authorization": header}, timeout=30).status_code
            for header in bogus
        ]
        assert guessed[:3] == [401, 401, 401] and set(guessed[3:]) == {429}
        guessing = httpx.post(
            f"{server.url}/api/v1/authenticate", json={"application_token": "hrd_x"}, timeout=30
        )
        assert guessing.status_code == 429  # the exchange shares the address's bucket
        with server.client(server.admin_token) as other:  # a valid token keeps its own bucket
            assert other.get("/event").status_code == 200
        assert increase(server, before, "herald_rate_limited_total") == 2 + 5 + 1
        figures.add("security.rate_limited_requests", statuses.count(429) + guessed.count(429))
    finally:
        server.stop()


def test_token_bucket_refills_at_its_rate() -> None:
    buckets = TokenBuckets(rate=2, burst=2)
    assert [buckets.take("k", 0.0) for _ in range(3)] == [0.0, 0.0, 0.5]
    assert buckets.take("k", 0.5) == 0.0  # one token back after half a second
    assert buckets.take("other", 0.5) == 0.0
