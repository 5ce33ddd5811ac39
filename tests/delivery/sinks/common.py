"""What the sink tests share: a tenant of a running Herald, its handler, its events, and the
check that a credential shows in no answer and no log line."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from tests.delivery.sinks.pki import Issued
from tests.support.herald import Herald
from tests.support.waiting import SLACK

T = TypeVar("T")
CUSTOM = "type:10001|10002"
"""The codes these tests post: other events of the tenant (audit records, say) stay out."""
PASSWORD = "pw-" + uuid.uuid4().hex  # a credential that must never be read back or logged


def unique(prefix: str) -> str:
    """A name no other test (or earlier run) uses: topics, subjects, exchanges, buckets."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def create(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"name": "sink", "filter": CUSTOM, **fields}
    response = client.post("/event_handler", json=body)
    assert response.status_code == 201, response.text
    assert "secret" not in response.json()  # only a webhook signs
    handler: dict[str, Any] = response.json()
    return handler


def post_events(client: httpx.Client, count: int, code: int = 10001) -> list[int]:
    batch = [{"event_type": {"id": code}, "description": f"e{i}"} for i in range(count)]
    response = client.post("/event", json=batch)
    assert response.status_code == 201, response.text
    return [event["id"] for event in response.json()]


def eventually(probe: Callable[[], T | None], timeout: float = 20, what: str = "") -> T:
    """``probe()`` once it answers something truthy; fails after ``timeout`` seconds (times
    the tests' ``SLACK`` for a loaded machine)."""
    deadline = time.monotonic() + timeout * SLACK
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or probe}")
        time.sleep(0.05)


def first_seen(ids: list[int]) -> list[int]:
    """The ids in order of their first arrival (at least once: a re-send may repeat some)."""
    return list(dict.fromkeys(ids))


def replay(client: httpx.Client, handler_id: int, since: str) -> None:
    response = client.post(f"/event_handler/{handler_id}/replay", json={"from": since})
    assert response.status_code == 202, response.text


def assert_never_shown(herald: Herald, client: httpx.Client, handler_id: int) -> None:
    """The credential is in no answer about the handler and in no line of the log."""
    for path in ("", "/status", "/delivery"):
        response = client.get(f"/event_handler/{handler_id}{path}")
        assert response.status_code == 200, response.text
        assert PASSWORD not in response.text
    assert PASSWORD not in client.get("/event_handler").text
    assert PASSWORD not in herald.log()
    for stored in herald.workdir.glob("herald.db*"):  # sealed at rest (SQLite runs)
        assert PASSWORD.encode() not in stored.read_bytes()


def assert_pems_never_shown(
    herald: Herald, client: httpx.Client, handler_ids: list[int], pairs: list[Issued]
) -> None:
    """No line of the certificates and keys is in an answer about the handlers, in the log,
    or in the database's files (sealed at rest: SQLite runs)."""
    shown = [client.get("/event_handler").text, herald.log()]
    for handler_id in handler_ids:
        for path in ("", "/status", "/delivery"):
            shown.append(client.get(f"/event_handler/{handler_id}{path}").text)
    stored = [path.read_bytes() for path in herald.workdir.glob("herald.db*")]
    for pair in pairs:
        for line in [line for pem in (pair.key, pair.cert) for line in pem.splitlines()[1:-1]]:
            assert not any(line in text for text in shown)
            assert not any(line.encode() in data for data in stored)


def errors_of(client: httpx.Client, handler_id: int) -> list[str]:
    """The errors of the handler's attempt log, newest first."""
    return [attempt["error"] for attempt in attempts(client, handler_id) if attempt["error"]]


def attempts(client: httpx.Client, handler_id: int) -> list[dict[str, Any]]:
    response = client.get(f"/event_handler/{handler_id}/delivery")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found
