"""``/metrics`` spans every tenant: only the scrape token or an internal token reads it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.herald import Herald
from tests.support.inproc import start_in_process

SCRAPE_TOKEN = "scrape-3f9a1c"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Herald]:
    workdir = tmp_path_factory.mktemp("metrics")
    running = start_in_process(workdir, env={"HERALD_METRICS_TOKEN": SCRAPE_TOKEN})
    try:
        yield running
    finally:
        running.stop()


def _scrape(server: Herald, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.get(f"{server.url}/metrics", headers=headers, timeout=10)


def test_the_scrape_token_and_an_internal_token_read_metrics(server: Herald) -> None:
    for token in (SCRAPE_TOKEN, server.admin_token):
        reply = _scrape(server, token)
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-type"].startswith("text/plain")
        assert "herald_events_ingested_total" in reply.text


def test_no_or_a_wrong_credential_is_refused(server: Herald) -> None:
    for token in (None, "scrape-wrong", SCRAPE_TOKEN + "x", SCRAPE_TOKEN[:-1]):
        reply = _scrape(server, token)
        assert reply.status_code == 401, (token, reply.text)
        assert reply.headers["www-authenticate"] == "Bearer"
        assert "herald_" not in reply.text


def test_a_tenant_token_is_forbidden(server: Herald) -> None:
    tenant = server.create_token(server.create_org("Tenant Co"), "event:read")
    reply = _scrape(server, tenant)
    assert reply.status_code == 403
    assert "HERALD_METRICS_TOKEN" in reply.json()["detail"]


def test_an_operator_can_open_metrics(tmp_path: Path) -> None:
    opened = start_in_process(tmp_path / "open", env={"HERALD_METRICS_PUBLIC": "true"})
    try:
        reply = _scrape(opened, None)
        assert reply.status_code == 200
        assert "herald_events_ingested_total" in reply.text
    finally:
        opened.stop()
