"""``herald handler`` with a broker sink: create, update, test, list, from the command line
(a process of its own, talking to Herald's app served in the test's process)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.delivery.receiver import start_delivery_in_process, tenant
from tests.delivery.sinks.common import PASSWORD, unique
from tests.delivery.sinks.pki import Authority
from tests.support.herald import HERALD
from tests.support.inproc import InProcessHerald


@pytest.fixture
def sqlite_herald(tmp_path: Path) -> Iterator[InProcessHerald]:
    server = start_delivery_in_process(tmp_path / "herald")
    try:
        yield server
    finally:
        server.stop()


def test_create_update_and_test_an_mqtt_handler(sqlite_herald: InProcessHerald) -> None:
    _, token = tenant(sqlite_herald)
    env = {
        **os.environ,
        "HERALD_URL": sqlite_herald.url,
        "HERALD_TOKEN": token,
        "HERALD_CREDENTIAL_USERNAME": "herald",
        "HERALD_CREDENTIAL_PASSWORD": PASSWORD,
    }

    def herald(*args: str) -> str:
        done = subprocess.run(
            [*HERALD, "handler", *args], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr + done.stdout
        assert PASSWORD not in done.stdout + done.stderr
        return done.stdout

    topic = unique("herald-test") + "/{event_type}"
    sink = ["--type", "mqtt", "--set", f"topic={topic}"]
    credentials = ["--credential", "username", "--credential", "password"]
    created = orjson.loads(herald("create", "fleet", "mqtt://127.0.0.1:1883", *sink, *credentials))
    assert created["type"] == "mqtt" and created["settings"]["topic"] == topic
    assert created["credentials_set"] is True and "secret" not in created
    handler_id = str(created["id"])
    updated = orjson.loads(herald("update", handler_id, "--set", "tls_verify=false"))
    assert updated["settings"] == {"topic": topic, "tls_verify": False}
    tested = orjson.loads(herald("test", handler_id))
    assert tested["outcome"] == "delivered" and "PUBACK" in tested["detail"]
    assert "mqtt" in herald("list")
    cleared = orjson.loads(herald("update", handler_id, "--clear-credentials"))
    assert cleared["credentials_set"] is False


def test_client_certificates_are_read_from_files(
    sqlite_herald: InProcessHerald, tmp_path: Path
) -> None:
    _, token = tenant(sqlite_herald)
    env = {**os.environ, "HERALD_URL": sqlite_herald.url, "HERALD_TOKEN": token}
    ca = Authority("CLI test CA")
    (tmp_path / "ca.pem").write_text(ca.pem)
    cert, key = ca.issue("herald").write(tmp_path, "client")

    def herald(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*HERALD, "handler", *args], env=env, capture_output=True, text=True, timeout=60
        )

    sink = ["--type", "mqtt", "--set", "topic=t", "--set", f"ca_cert=@{tmp_path / 'ca.pem'}"]
    done = herald(
        "create", "tls", "mqtts://127.0.0.1:8883", *sink,
        "--credential", f"client_cert=@{cert}", "--credential", f"client_key=@{key}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    created = orjson.loads(done.stdout)
    assert created["settings"]["ca_cert"] == ca.pem and created["credentials_set"] is True
    assert key.read_text().splitlines()[1] not in done.stdout + done.stderr
    inline = herald("update", str(created["id"]), "--credential", "client_key=secret-inline")
    assert inline.returncode != 0 and "secret-inline" not in inline.stdout + inline.stderr
    missing = herald("update", str(created["id"]), "--credential", "client_key=@/nonexistent")
    assert missing.returncode != 0 and "cannot read /nonexistent" in missing.stderr
