"""Ingest credentials (issue #34 point 1): each provider's streamer authenticates as it sends.

The app served in process per backend; credentials made by ``herald ingest-credential create``;
1NCE posts with HTTP Basic (any user name, the credential as password), emnify's API callback
with its secret as the whole ``Authorization`` header; Bearer still works on every route.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from herald.api.app import create_app
from herald.config import Settings
from tests.ingest.examples import onece_examples, recently
from tests.support.inproc import InProcessHerald, start_in_process
from tests.support.records import emnify_record

BURST = 30  # each credential's (and the failed attempts') rate-limit burst on this server


@pytest.fixture(scope="module")
def herald(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str
) -> Iterator[InProcessHerald]:
    server = start_in_process(
        tmp_path_factory.mktemp("ingest-credentials") / "herald",
        env={
            "HERALD_RATE_LIMIT_PER_SECOND": "0.001",  # no refill within a test
            "HERALD_RATE_LIMIT_BURST": str(BURST),
        },
        database_url=module_database_url,
    )
    try:
        yield server
    finally:
        server.stop()


def _credential(herald: InProcessHerald, provider: str, organisation: int) -> tuple[int, str, str]:
    """(token id, the CLI's output, the secret it printed last)."""
    result = herald.cli(
        "ingest-credential",
        "create",
        "--provider",
        provider,
        "--org",
        str(organisation),
        "--database",
        herald.database_url,
    )
    lines = result.stdout.strip().splitlines()
    token_id = int(lines[0].split("(token ")[1].split(",")[0])
    return token_id, result.stdout, lines[-1]


def _raw(herald: InProcessHerald) -> httpx.Client:
    """A client sending only the headers a test gives (no Bearer)."""
    return httpx.Client(base_url=f"{herald.url}/api/v1", timeout=30)


def _onece_batch() -> list[dict[str, object]]:
    records = [record for _, record in onece_examples()][:3]
    return recently([{**record, "id": 9100 + i} for i, record in enumerate(records)])


def test_1nce_posts_with_basic_auth_as_its_portal_configures(herald: InProcessHerald) -> None:
    organisation = herald.create_org("1nce basic")
    token_id, output, password = _credential(herald, "1nce", organisation)
    assert "Basic authentication with user name 'herald'" in output
    assert password.startswith("hrd_")
    batch = _onece_batch()
    with _raw(herald) as client:
        # exactly what the streamer sends: a JSON array, Authorization: Basic base64(user:pass)
        answer = client.post("/ingest/1nce", json=batch, auth=("herald", password))
        assert answer.status_code == 200, answer.text
        assert answer.json()["stored"] == len(batch)
        # any user name: the 1NCE portal wants one, the password is the credential
        again = client.post("/ingest/1nce", json=batch, auth=("my-streamer", password))
        assert again.status_code == 200, again.text
        assert again.json()["duplicates"] == len(batch)
        # bound to its provider: not emnify's route, not the rest of the API
        other = client.post("/ingest/emnify", json=[], auth=("herald", password))
        assert other.status_code == 401  # emnify's route takes no Basic header
        assert client.get("/event", auth=("herald", password)).status_code == 401
        bearer = {"Authorization": f"Bearer {password}"}
        assert client.post("/ingest/emnify", json=[], headers=bearer).status_code == 403
        assert client.get("/event", headers=bearer).status_code == 403
    with herald.client(herald.create_token(organisation, "event:read")) as reader:
        events = reader.get("/event", params={"provider": "1nce"}).json()
    assert {event["organisation"]["id"] for event in events} == {organisation}
    assert len(events) == len(batch)
    assert (
        f"{token_id}"
        in herald.cli(
            "token", "list", "--org", str(organisation), "--database", herald.database_url
        ).stdout
    )


def test_emnify_posts_its_api_callback_secret(herald: InProcessHerald) -> None:
    organisation = herald.create_org("emnify secret")
    _, output, secret = _credential(herald, "emnify", organisation)
    assert "API secret" in output
    with _raw(herald) as client:
        # the API callback's secret is the whole Authorization header, one record per request
        answer = client.post(
            "/ingest/emnify", json=emnify_record("7001"), headers={"Authorization": secret}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["stored"] == 1
        bulk = client.post(
            "/ingest/emnify",
            json=[emnify_record("7002"), emnify_record("7003")],
            headers={"Authorization": secret},
        )
        assert bulk.json()["stored"] == 2
        # a bare secret is an ingest form only: not 1NCE's route (Basic), not the API
        assert (
            client.post("/ingest/1nce", json=[], headers={"Authorization": secret}).status_code
            == 401
        )
        assert client.get("/event", headers={"Authorization": secret}).status_code == 401
        # Bearer keeps working for the same credential
        bearer = client.post(
            "/ingest/emnify",
            json=emnify_record("7004"),
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert bearer.json()["stored"] == 1


def test_refusals_name_the_forms_and_never_echo_the_secret(herald: InProcessHerald) -> None:
    organisation = herald.create_org("ingest refusals")
    token_id, _, password = _credential(herald, "1nce", organisation)
    wrong = password[:-4] + ("AAAA" if not password.endswith("AAAA") else "BBBB")
    with _raw(herald) as client:
        missing = client.post("/ingest/1nce", json=[])
        assert missing.status_code == 401
        assert missing.headers["content-type"] == "application/problem+json"
        assert "Basic" in missing.json()["detail"]
        assert missing.headers["www-authenticate"].startswith("Basic")
        bad = client.post("/ingest/1nce", json=[], auth=("herald", wrong))
        assert bad.status_code == 401
        assert wrong not in bad.text
        garbled = client.post("/ingest/1nce", json=[], headers={"Authorization": "Basic %%%"})
        assert garbled.status_code == 401
        assert "malformed Basic credentials" in garbled.json()["detail"]
        no_colon = base64.b64encode(password.encode()).decode()
        assert (
            client.post(
                "/ingest/1nce", json=[], headers={"Authorization": f"Basic {no_colon}"}
            ).status_code
            == 401
        )
        emnify_missing = client.post("/ingest/emnify", json=[])
        assert "API callback secret" in emnify_missing.json()["detail"]
        # revocable: the portal's stored password stops working at once
        assert client.post("/ingest/1nce", json=[], auth=("herald", password)).status_code == 200
        herald.cli("token", "revoke", str(token_id), "--database", herald.database_url)
        revoked = client.post("/ingest/1nce", json=[], auth=("herald", password))
        assert revoked.status_code == 401
        assert revoked.json()["detail"] == "token revoked"
    log = herald.log()
    assert password not in log and wrong not in log
    assert password[4:20] not in log


def test_each_credential_has_its_own_rate_limit(herald: InProcessHerald) -> None:
    organisation = herald.create_org("ingest rate")
    _, _, first = _credential(herald, "1nce", organisation)
    _, _, second = _credential(herald, "1nce", organisation)
    with _raw(herald) as client:
        for _ in range(BURST):
            assert client.post("/ingest/1nce", json=[], auth=("herald", first)).status_code == 200
        limited = client.post("/ingest/1nce", json=[], auth=("herald", first))
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert client.post("/ingest/1nce", json=[], auth=("herald", second)).status_code == 200


def test_the_openapi_document_names_each_providers_form(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'herald.db'}", demo=False))
    document = app.openapi()
    schemes = document["components"]["securitySchemes"]
    assert schemes["ingestBasic"]["scheme"] == "basic"
    assert schemes["emnifyCallbackSecret"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": schemes["emnifyCallbackSecret"]["description"],
    }
    paths = document["paths"]
    assert paths["/api/v1/ingest/1nce"]["post"]["security"] == [
        {"HTTPBearer": []},
        {"ingestBasic": []},
    ]
    assert paths["/api/v1/ingest/emnify"]["post"]["security"] == [
        {"HTTPBearer": []},
        {"emnifyCallbackSecret": []},
    ]
    assert paths["/api/v1/ingest/stacuity"]["post"]["security"] == [{"HTTPBearer": []}]
