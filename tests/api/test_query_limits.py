"""One tenant's queries cannot hold the store: each has a time limit (422 past it) and each
organisation a bound on its queries at once (429 past it), over the app (in process)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.herald import Herald
from tests.support.inproc import start_in_process
from tests.support.metrics import increase, scrape

EVENTS = 5_000
# Twenty substrings (the most a filter takes) no record holds: a LIKE each, over every row.
SCAN = "description:" + "|".join(f"no-such-text-{n}" for n in range(20))


@contextmanager
def _serve(tmp_path: Path, database_url: str, **env: str) -> Iterator[Herald]:
    env = {"HERALD_EVENT_BUDGET_PER_SECOND": "0", **env}  # the fill writes 5,000 at once
    server = start_in_process(tmp_path / "herald", env=env, database_url=database_url)
    try:
        yield server
    finally:
        server.stop()


def _fill(server: Herald, token: str, events: int) -> None:
    with server.client(token) as client:
        for start in range(0, events, 1000):
            batch = [
                {"event_type": {"id": 3}, "description": f"PDP Context accepted {n}"}
                for n in range(start, min(start + 1000, events))
            ]
            assert client.post("/event", json=batch).status_code == 201


@pytest.fixture
def hasty(tmp_path: Path, database_url: str) -> Iterator[Herald]:
    """A server that gives a query one millisecond."""
    with _serve(tmp_path, database_url, HERALD_QUERY_TIME_LIMIT_SECONDS="0.001") as server:
        yield server


def test_a_query_past_the_time_limit_answers_422_naming_the_filter(hasty: Herald) -> None:
    before = scrape(hasty)
    org = hasty.create_org("Acme IoT")
    token = hasty.create_token(org, "event:read", "event:create")
    _fill(hasty, token, EVENTS)
    with hasty.client(token) as client:
        for path in ("/event", "/event/stats"):  # the list, and counts it cannot roll up
            response = client.get(path, params={"q": SCAN})
            assert response.status_code == 422, response.text
            problem = response.json()
            assert problem["title"] == "Query too slow"
            assert problem["errors"][0]["field"] == "q"
            assert "longer than 0.001 s" in problem["errors"][0]["reason"]
            assert "from/until" in problem["errors"][0]["reason"]
    assert increase(hasty, before, 'herald_queries_refused_total{reason="timeout"}') == 2
    assert increase(hasty, before, 'herald_queries_refused_total{reason="busy"}') == 0


@pytest.mark.parametrize("backend", ["sqlite"])  # the bound is the API's, not the store's
def test_an_organisations_queries_at_once_are_bounded_and_others_go_on(
    tmp_path: Path, database_url: str
) -> None:
    with _serve(tmp_path, database_url, HERALD_QUERIES_PER_ORGANISATION="1") as server:
        before = scrape(server)
        busy, quiet = server.create_org("Busy"), server.create_org("Quiet")
        busy_token = server.create_token(busy, "event:read", "event:create")
        quiet_token = server.create_token(quiet, "event:read", "event:create")
        _fill(server, busy_token, EVENTS)
        _fill(server, quiet_token, 10)
        requests = [busy_token] * 8 + [quiet_token]
        start = threading.Barrier(len(requests))
        answers: list[tuple[str, httpx.Response]] = []

        def scan(token: str) -> None:
            with server.client(token) as client:
                start.wait(timeout=30)
                answers.append((token, client.get("/event", params={"q": SCAN})))

        threads = [threading.Thread(target=scan, args=(token,)) for token in requests]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        statuses = sorted(r.status_code for token, r in answers if token == busy_token)
        assert len(answers) == len(requests)
        assert 200 in statuses and 429 in statuses and set(statuses) == {200, 429}, statuses
        refused = next(r for _, r in answers if r.status_code == 429)
        assert refused.headers["retry-after"] == "1"
        assert "at most 1 at once" in refused.json()["detail"]
        assert [r.status_code for token, r in answers if token == quiet_token] == [200]
        refusals = increase(server, before, 'herald_queries_refused_total{reason="busy"}')
        assert refusals == statuses.count(429)
