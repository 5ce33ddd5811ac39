"""Each type's settings, checked when a handler is written: 422 naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
    load_pem_private_key,
)

from herald.delivery.sinks import SettingsError, check_settings
from herald.delivery.sinks.templates import expand
from tests.delivery.receiver import start_delivery_in_process, tenant
from tests.delivery.sinks.common import PASSWORD
from tests.delivery.sinks.pki import Authority

RECORD: dict[str, Any] = {
    "organisation": {"id": 7},
    "event_type": {"id": 3},
    "event_severity": {"id": 1, "description": "Warn"},
    "endpoint": {"id": "a/b#+ c"},
    "target": {"type": "device", "id": "x.y*>"},
}


def test_templates_expand_sanitised_values() -> None:
    topic = "fleet/{organisation_id}/{event_type}/{severity}/{endpoint_id}/{moniker}"
    assert expand(topic, RECORD) == "fleet/7/3/warn/a_b___c/none"
    assert expand("t.{target_type}.{target_id}", RECORD) == "t.device.x_y__"


@pytest.mark.parametrize(
    ("kind", "url", "settings", "credentials", "field"),
    [
        ("mqtt", "mqtt://h", {}, None, "settings.topic"),
        ("mqtt", "mqtt://h", {"topic": "a/#"}, None, "settings.topic"),
        ("mqtt", "mqtt://h", {"topic": "a/+/b"}, None, "settings.topic"),
        ("mqtt", "mqtt://h", {"topic": "a/{nope}"}, None, "settings.topic"),
        ("mqtt", "mqtt://h", {"topic": "a/{event_type!r}"}, None, "settings.topic"),
        ("mqtt", "mqtt://h", {"topic": "a", "subject": "b"}, None, "settings.subject"),
        ("mqtt", "nats://h", {"topic": "a"}, None, "url"),
        ("mqtt", "mqtt://u:p@h", {"topic": "a"}, None, "url"),
        ("mqtt", "mqtt://h", {"topic": "a"}, {"token": "t"}, "credentials.token"),
        ("mqtt", "mqtt://h", {"topic": "a"}, {"password": "p"}, "credentials.username"),
        ("nats", "nats://h", {"subject": "a b"}, None, "settings.subject"),
        ("nats", "nats://h", {"subject": "a.*"}, None, "settings.subject"),
        ("nats", "nats://h", {"subject": "a..b"}, None, "settings.subject"),
        ("nats", "nats://h", {"subject": "a.>"}, None, "settings.subject"),
        ("amqp", "amqp://h/", {"routing_key": "k"}, None, "settings.exchange"),
        ("amqp", "amqp://h/", {"exchange": "x"}, None, "settings.routing_key"),
        ("s3", "http://h", {}, None, "settings.bucket"),
        ("s3", "http://h", {"bucket": "a_b"}, None, "settings.bucket"),
        ("s3", "mqtt://h", {"bucket": "abc"}, None, "url"),
        ("s3", "http://h", {"bucket": "abc"}, {"access_key_id": "k"}, "credentials"),
        ("s3", "http://h", {"bucket": "abc", "tls_verify": "no"}, None, "settings.tls_verify"),
        ("webhook", "http://h", {"topic": "a"}, None, "settings.topic"),
    ],
)
def test_bad_settings_name_the_field(
    kind: str,
    url: str,
    settings: dict[str, Any],
    credentials: dict[str, Any] | None,
    field: str,
) -> None:
    with pytest.raises(SettingsError) as refused:
        check_settings(kind, url, settings, credentials)
    assert refused.value.field == field


CA = Authority("Settings test CA")
PAIR = CA.issue("client")
OTHER = CA.issue("other")
ENCRYPTED = (
    load_pem_private_key(PAIR.key.encode(), None)
    .private_bytes(Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"pass"))
    .decode()
)
TLS_TOPIC = {"topic": "t"}


@pytest.mark.parametrize(
    ("url", "settings", "credentials", "field"),
    [
        ("mqtts://h", TLS_TOPIC, {"client_cert": "x", "client_key": PAIR.key}, "client_cert"),
        ("mqtts://h", TLS_TOPIC, {"client_cert": PAIR.key, "client_key": PAIR.key}, "client_cert"),
        ("mqtts://h", TLS_TOPIC, {"client_cert": PAIR.cert}, "client_key"),
        ("mqtts://h", TLS_TOPIC, {"client_key": PAIR.key}, "client_cert"),
        ("mqtts://h", TLS_TOPIC, {"client_cert": PAIR.cert, "client_key": OTHER.key}, "client_key"),
        ("mqtts://h", TLS_TOPIC, {"client_cert": PAIR.cert, "client_key": ENCRYPTED}, "client_key"),
        ("mqtts://h", TLS_TOPIC, {"client_cert": PAIR.cert, "client_key": "x"}, "client_key"),
        ("mqtt://h", TLS_TOPIC, {"client_cert": PAIR.cert, "client_key": PAIR.key}, "client_cert"),
        ("mqtts://h", {**TLS_TOPIC, "ca_cert": "-----BEGIN CERTIFICATE-----"}, None, "ca_cert"),
        ("mqtts://h", {**TLS_TOPIC, "ca_cert": "x" * 16385}, None, "ca_cert"),
        ("mqtt://h", {**TLS_TOPIC, "ca_cert": CA.pem}, None, "ca_cert"),
    ],
)
def test_bad_pems_name_the_field_and_never_quote_it(
    url: str, settings: dict[str, Any], credentials: dict[str, Any] | None, field: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        check_settings("mqtt", url, settings, credentials)
    kind = "settings" if field == "ca_cert" else "credentials"
    assert refused.value.field == f"{kind}.{field}"
    for pem in (PAIR.key, PAIR.cert, OTHER.key, CA.pem):
        assert pem.splitlines()[1] not in str(refused.value)


def test_client_certificates_go_to_each_tls_broker() -> None:
    pair = {"client_cert": PAIR.cert, "client_key": PAIR.key}
    for kind, url, settings in [
        ("mqtt", "mqtts://h", TLS_TOPIC),
        ("nats", "tls://h", {"subject": "s"}),
        ("amqp", "amqps://h/", {"exchange": "", "routing_key": "k"}),
    ]:
        checked, credentials = check_settings(kind, url, {**settings, "ca_cert": CA.pem}, pair)
        assert checked["ca_cert"] == CA.pem and credentials == pair
        assert "ca_cert" not in check_settings(kind, url, {**settings, "ca_cert": ""}, None)[0]
    with pytest.raises(SettingsError) as refused:
        check_settings("s3", "https://h", {"bucket": "abc"}, pair)
    assert refused.value.field == "credentials.client_cert"


def test_defaults_are_filled_in() -> None:
    settings, credentials = check_settings("s3", "https://s3.example", {"bucket": "abc"}, {})
    assert settings == {"bucket": "abc", "region": "us-east-1", "tls_verify": True}
    assert credentials is None


MQTT = {"type": "mqtt", "url": "mqtt://127.0.0.1"}
REFUSED: list[tuple[dict[str, Any], str]] = [
    ({**MQTT, "settings": {"topic": "a/#"}}, "settings.topic"),
    ({"type": "nats", "url": "nats://127.0.0.1", "settings": {}}, "settings.subject"),
    ({"type": "amqp", "url": "http://127.0.0.1", "settings": {}}, "url"),
    ({"type": "s3", "url": "http://127.0.0.1", "settings": {"bucket": "x"}}, "settings.bucket"),
    ({**MQTT, "settings": {"topic": "a"}, "credentials": {"token": PASSWORD}}, "credentials.token"),
    ({"type": "kafka", "url": "http://127.0.0.1"}, "type"),
    ({**MQTT, "settings": {"topic": "t"}, "batch": {"max_bytes": 1023}}, "batch.max_bytes"),
    ({**MQTT, "settings": {"topic": "t"}, "batch": {"max_bytes": 2**26 + 1}}, "batch.max_bytes"),
    ({**MQTT, "settings": {"topic": "t"}, "batch": {"max_bytes": "1k"}}, "batch.max_bytes"),
]


@pytest.fixture
def sqlite_api(tmp_path: Path) -> Iterator[httpx.Client]:
    """A tenant of a SQLite server (in process): validation happens before the store."""
    server = start_delivery_in_process(tmp_path / "herald")
    try:
        _, token = tenant(server)
        with server.client(token) as client:
            yield client
    finally:
        server.stop()


def test_the_api_answers_422_naming_the_field(sqlite_api: httpx.Client) -> None:
    api = sqlite_api
    for body, field in REFUSED:
        response = api.post("/event_handler", json={"name": "bad", **body})
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert field in [error["field"] for error in response.json()["errors"]], field
        assert PASSWORD not in response.text
    created = api.post("/event_handler", json={"name": "ok", **MQTT, "settings": {"topic": "t"}})
    patched = api.patch(
        f"/event_handler/{created.json()['id']}", json={"settings": {"topic": "a/+"}}
    )
    assert patched.status_code == 422 and "settings.topic" in patched.text


def test_batch_bytes_are_kept_and_a_new_batch_replaces_them(sqlite_api: httpx.Client) -> None:
    api = sqlite_api
    body = {"name": "b", **MQTT, "settings": {"topic": "t"}}
    created = api.post(
        "/event_handler", json={**body, "batch": {"max_events": 50, "max_bytes": 4096}}
    )
    assert created.status_code == 201, created.text
    assert created.json()["batch"] == {"max_events": 50, "max_wait_ms": 0, "max_bytes": 4096}
    path = f"/event_handler/{created.json()['id']}"
    assert api.patch(path, json={"name": "renamed"}).json()["batch"]["max_bytes"] == 4096
    patched = api.patch(path, json={"batch": {"max_events": 20}})
    assert patched.json()["batch"] == {"max_events": 20, "max_wait_ms": 0, "max_bytes": None}


def test_client_certificates_through_the_api(sqlite_api: httpx.Client) -> None:
    api = sqlite_api
    body = {"name": "m", "type": "mqtt", "url": "mqtts://127.0.0.1", "settings": TLS_TOPIC}
    wrong = {"client_cert": PAIR.cert, "client_key": OTHER.key}
    refused = api.post("/event_handler", json={**body, "credentials": wrong})
    assert refused.status_code == 422, refused.text
    assert [e["field"] for e in refused.json()["errors"]] == ["credentials.client_key"]
    assert OTHER.key.splitlines()[1] not in refused.text
    pair = {"client_cert": PAIR.cert, "client_key": PAIR.key}
    created = api.post("/event_handler", json={**body, "credentials": pair})
    assert created.status_code == 201, created.text
    assert created.json()["credentials_set"] and PAIR.key.splitlines()[1] not in created.text
    path = f"/event_handler/{created.json()['id']}"
    plain = api.patch(path, json={"url": "mqtt://127.0.0.1"})  # the stored cert needs TLS
    assert plain.status_code == 422 and "credentials.client_cert" in plain.text
    cleared = api.patch(path, json={"url": "mqtt://127.0.0.1", "credentials": {}})
    assert cleared.status_code == 200 and not cleared.json()["credentials_set"]
