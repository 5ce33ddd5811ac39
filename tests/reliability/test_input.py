"""Bad input: hypothesis over the event body and the ``q`` filter, and hostile bodies (the
schemathesis runs are in ``schemathesis_run``'s test files). No 5xx, no response that
breaks the schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.conftest import FUZZ_EXAMPLES, SOAK, Tenant, make_tenant
from tests.reliability.figures import Figures
from tests.support.server import HeraldServer, start_server

FUZZ = settings(
    max_examples=FUZZ_EXAMPLES * (10 if SOAK else 3),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HeraldServer, Tenant]]:
    """A server that delivers nothing (fuzzed handlers must not send anywhere)."""
    server = start_server(
        tmp_path_factory.mktemp("fuzz") / "herald",
        env={"HERALD_DELIVERY_ENABLED": "false", "HERALD_MAX_BODY_BYTES": "1048576"},
    )
    try:
        yield server, make_tenant(server, "Fuzz Co")
    finally:
        server.stop()


@pytest.fixture(scope="module")
def client(target: tuple[HeraldServer, Tenant]) -> Iterator[httpx.Client]:
    server, tenant = target
    with server.client(tenant.token) as http:
        yield http


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)
FIELDS = [
    "id", "timestamp", "event_type", "moniker", "event_severity", "event_source",
    "organisation", "alert", "description", "endpoint", "sim", "imsi", "user", "detail",
    "target", "criticality", "payload",
]  # fmt: skip
EVENT = st.dictionaries(
    st.sampled_from(FIELDS) | st.text(max_size=10),
    JSON
    | st.fixed_dictionaries({"id": st.integers() | st.text(max_size=8)})
    | st.datetimes().map(lambda d: d.isoformat()),
    max_size=8,
)


@FUZZ
@given(body=EVENT | st.lists(EVENT, max_size=5) | JSON)
def test_fuzzed_event_bodies_get_201_or_4xx(
    client: httpx.Client, figures: Figures, body: Any
) -> None:
    response = client.post("/event", json=body)
    assert response.status_code in (201, 400, 403, 413, 422), response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
    figures.add("fuzz.event_bodies")


RECORD_FIELDS = [
    "id", "timestamp", "event_type", "event_severity", "event_source", "alert", "description",
    "endpoint", "sim", "imsi", "user", "detail", "eventId", "eventTime", "eventType",
    "endpointId", "routingTargetId", "accountId",
]  # fmt: skip
RECORD = st.dictionaries(
    st.sampled_from(RECORD_FIELDS) | st.text(max_size=10),
    JSON | st.fixed_dictionaries({"id": st.integers(0, 99) | st.text(max_size=4)}),
    max_size=8,
)


@pytest.fixture(scope="module")
def streamer(target: tuple[HeraldServer, Tenant]) -> Iterator[httpx.Client]:
    server, tenant = target
    permissions = ("ingest:emnify", "ingest:1nce", "ingest:stacuity")
    with server.client(server.create_token(tenant.organisation_id, *permissions)) as http:
        yield http


@FUZZ
@given(
    provider=st.sampled_from(["emnify", "1nce", "stacuity"]),
    body=RECORD | st.lists(RECORD | JSON, max_size=5) | JSON,
)
def test_fuzzed_provider_batches_are_acknowledged_or_refused_whole(
    streamer: httpx.Client, figures: Figures, provider: str, body: Any
) -> None:
    """Any batch of records is acknowledged, each record stored or quarantined; only a body
    that is no batch (a scalar; text that is not JSON) is refused."""
    response = streamer.post(f"/ingest/{provider}", json=body)
    assert response.status_code in (200, 400, 422), response.text
    if response.status_code == 200:
        answer = response.json()
        assert answer["stored"] + answer["duplicates"] + answer["quarantined"] == len(
            answer["records"]
        )
        assert answer["received"] == len(answer["records"])
    else:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.status_code == 400 or not isinstance(body, dict | list)
    figures.add("fuzz.provider_batches")


FILTER_FIELDS = [
    "type", "code", "severity", "source", "alert", "from", "until", "endpoint", "sim", "user",
    "iccid", "iccid_with_luhn", "imsi", "imei", "ip_address", "tags", "description",
    "target_type", "target_id", "criticality", "moniker", "provider", "organisation",
]  # fmt: skip
TERM = st.tuples(st.sampled_from(FILTER_FIELDS) | st.text(max_size=8), st.text(max_size=30)).map(
    ":".join
)


@FUZZ
@given(
    q=st.lists(TERM, max_size=4).map(",".join) | st.text(max_size=60),
    sort=st.none() | st.text(max_size=20),
)
def test_fuzzed_filters_get_200_or_4xx(
    client: httpx.Client, figures: Figures, q: str, sort: str | None
) -> None:
    params = {"q": q} if sort is None else {"q": q, "sort": sort}
    response = client.get("/event", params=params)
    assert response.status_code in (200, 400, 422), response.text
    figures.add("fuzz.filters")


HOSTILE: list[tuple[str, bytes]] = [
    ("huge body", b"[" + b'{"event_type":{"id":10001}},' * 60_000 + b"{}]"),
    ("deep nesting", b'{"detail":' * 5000 + b"1" + b"}" * 5000),
    ("deep array", b"[" * 100_000 + b"]" * 100_000),
    ("long string", b'{"event_type":{"id":10001},"description":"' + b"x" * 100_000 + b'"}'),
    ("invalid UTF-8", b'{"event_type":{"id":10001},"description":"\xff\xfe\xc3"}'),
    ("lone surrogate", b'{"event_type":{"id":10001},"description":"\\ud800"}'),
    ("NUL", b'{"event_type":{"id":10001},"description":"a\\u0000b"}'),
    ("not JSON", b"\x00\x01\x02"),
    ("huge number", b'{"event_type":{"id":1' + b"0" * 5000 + b"}}"),
    ("batch too long", b"[" + b"{}," * 1000 + b"{}]"),
]


@pytest.mark.parametrize(("name", "body"), HOSTILE, ids=[name for name, _ in HOSTILE])
def test_hostile_bodies_are_refused_with_4xx(
    client: httpx.Client, figures: Figures, name: str, body: bytes
) -> None:
    response = client.post("/event", content=body, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, (name, response.status_code)
    figures.add("fuzz.hostile_bodies")


def test_openapi_document_is_served(target: tuple[HeraldServer, Tenant]) -> None:
    """Regression: a response class without ``status_code`` made the document a 500."""
    server, _ = target
    response = httpx.get(f"{server.url}/api/openapi.json", timeout=30)
    assert response.status_code == 200
    assert "/api/v1/event/stream" in response.json()["paths"]


def test_ids_beyond_64_bits_are_400_not_500(client: httpx.Client) -> None:
    """Regression: SQLite overflowed on ids past 2**63 - 1 and answered 500."""
    for path in (f"/event/{2**70}", f"/event_handler/{2**70}", f"/event_handler/{2**70}/status"):
        assert client.get(path).status_code == 400, path


def test_non_ascii_filters_are_echoed_not_500(client: httpx.Client) -> None:
    """Regression: X-Filter echoed a non-Latin-1 value and the response failed with 500."""
    response = client.get("/event", params={"q": "description:Müller €\U0009c590"})
    assert response.status_code == 200
    assert response.headers["X-Filter"].isascii()
