"""Each type's settings, checked when a handler is written: 422 naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from herald.delivery.sinks import SettingsError, check_settings
from herald.delivery.sinks.templates import expand
from tests.delivery.receiver import start_delivery_server, tenant
from tests.delivery.sinks.common import PASSWORD

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
    """A tenant of a SQLite server: validation happens before the store."""
    server = start_delivery_server(tmp_path / "herald")
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
