"""Security: tenant isolation, refused credentials, rate limits, secrets, security events."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jwt
import orjson
import pytest

from herald.api.ratelimit import TokenBuckets
from tests.reliability.conftest import Tenant, make_tenant
from tests.reliability.figures import Figures
from tests.support.server import HeraldServer, start_server

JWT_SECRET = "reliability-suite-secret-" + "x" * 32


@dataclass
class World:
    server: HeraldServer
    a: Tenant
    b: Tenant
    event_id: int
    handler_id: int
    handler_secret: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Two tenants; A has an event on endpoint/sim/user 7 and a (disabled) handler."""
    server = start_server(
        tmp_path_factory.mktemp("security") / "herald",
        env={
            "HERALD_JWT_SECRET": JWT_SECRET,
            "HERALD_ALLOW_PRIVATE_TARGETS": "true",
            "HERALD_AUDIT_EVENTS": "true",
        },
    )
    try:
        a, b = make_tenant(server, "Tenant A"), make_tenant(server, "Tenant B")
        with server.client(a.token) as client:
            event = client.post(
                "/event",
                json={
                    "event_type": {"id": 10001},
                    "description": "A's secret business",
                    "endpoint": {"id": 7},
                    "sim": {"id": 7},
                    "user": {"id": 7},
                },
            )
            handler = client.post(
                "/event_handler",
                json={"name": "A hook", "url": "http://127.0.0.1:9/hook", "enabled": False},
            )
        assert event.status_code == 201 and handler.status_code == 201, handler.text
        yield World(
            server, a, b, event.json()["id"], handler.json()["id"], handler.json()["secret"]
        )
    finally:
        server.stop()


def _matrix(w: World) -> list[tuple[str, str, Any]]:
    e, h, o = w.event_id, w.handler_id, w.a.organisation_id
    return [
        ("GET", f"/event/{e}", None),
        ("GET", f"/organisation/{o}/event", None),
        ("GET", "/event", {"organisation": o}),
        ("GET", "/endpoint/7/event", None),
        ("GET", "/sim/7/event", None),
        ("GET", "/user/7/event", None),
        ("GET", "/event", {"q": f"organisation:{o}"}),
        ("GET", "/event", {"description": "secret"}),
        ("GET", "/event/stats", None),
        ("POST", "/event", {"event_type": {"id": 10001}, "organisation": {"id": o}}),
        ("GET", "/event_handler", None),
        ("GET", f"/event_handler/{h}", None),
        ("PATCH", f"/event_handler/{h}", {"name": "taken over"}),
        ("GET", f"/event_handler/{h}/status", None),
        ("GET", f"/event_handler/{h}/delivery", None),
        ("POST", f"/event_handler/{h}/replay", {"from": "2020-01-01T00:00:00Z"}),
        ("POST", f"/event_handler/{h}/test", None),
        ("POST", f"/event_handler/{h}/secret/rotate", None),
        ("DELETE", f"/event_handler/{h}", None),
    ]


def test_another_tenants_token_gets_404_or_403_never_data(world: World, figures: Figures) -> None:
    leaks: list[str] = []
    with world.server.client(world.b.token) as client:
        for method, path, payload in _matrix(world):
            if method == "GET":
                response = client.get(path, params=payload)
            else:
                response = client.request(method, path, json=payload)
            text = response.text
            if response.status_code not in (403, 404) and (
                response.status_code >= 300
                or "A's secret business" in text
                or "A hook" in text
                or f'"id":{world.a.organisation_id},"name":"Tenant A"' in text.replace(" ", "")
            ):
                leaks.append(f"{method} {path}: {response.status_code} {text[:200]}")
            assert response.status_code < 500, f"{method} {path}: {text}"
            figures.add("security.isolation_cases")
    assert leaks == []
    with world.server.client(world.a.token) as client:  # and A's things are untouched
        assert client.get(f"/event_handler/{world.handler_id}").json()["name"] == "A hook"


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


def _events_of(server: HeraldServer, organisation: int) -> list[dict[str, Any]]:
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
    server = start_server(
        tmp_path / "herald",
        env={"HERALD_RATE_LIMIT_PER_SECOND": "0.5", "HERALD_RATE_LIMIT_BURST": "3"},
    )
    try:
        tenant = make_tenant(server, "Busy Co", "event:read")
        with server.client(tenant.token) as client:
            statuses = [client.get("/event").status_code for _ in range(5)]
            limited = client.get("/event")
        assert statuses[:3] == [200, 200, 200] and 429 in statuses
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.headers["content-type"] == "application/problem+json"
        with server.client(server.admin_token) as other:  # another token has its own bucket
            assert other.get("/event").status_code == 200
        figures.add("security.rate_limited_requests", statuses.count(429) + 1)
    finally:
        server.stop()


def test_token_bucket_refills_at_its_rate() -> None:
    buckets = TokenBuckets(rate=2, burst=2)
    assert [buckets.take("k", 0.0) for _ in range(3)] == [0.0, 0.0, 0.5]
    assert buckets.take("k", 0.5) == 0.0  # one token back after half a second
    assert buckets.take("other", 0.5) == 0.0
