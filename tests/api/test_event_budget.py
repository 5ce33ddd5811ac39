"""Each organisation's event budget over the app (in process), on both backends (issue 28):
set with ``herald org limits``; writes over it answer 429 with ``Retry-After`` and a problem
naming the budget, store nothing, and leave other organisations' writes alone."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from tests.support.herald import Herald
from tests.support.records import emnify_record

PERMISSIONS = ("event:create", "event:read", "ingest:emnify")


def _events(count: int, label: str) -> list[dict[str, Any]]:
    return [{"event_type": {"id": 10001}, "description": f"{label} {n}"} for n in range(count)]


def _stored(client: httpx.Client) -> int:
    response = client.get("/event", params={"per_page": 1000, "type": 10001})
    assert response.status_code == 200, response.text
    return len(response.json())


def _limits(herald: Herald, organisation: int, *options: str) -> str:
    args = ("org", "limits", str(organisation), *options, "--database", herald.database_url)
    return herald.cli(*args).stdout


def _over_budget(response: httpx.Response, budget: str, status: int = 429) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["title"] == "Over the event budget"
    assert problem["errors"][0]["field"] == f"event_budget.{budget}"
    return problem


def test_events_over_an_organisations_budget_answer_429_and_others_write_on(
    herald: Herald,
) -> None:
    busy, quiet = herald.create_org("Busy"), herald.create_org("Quiet")
    said = _limits(herald, busy, "--events-per-second", "0.01", "--burst", "20")
    assert f"Organisation {busy} may write 0.01 events per second, 20 at once (burst)" in said
    with (
        herald.client(herald.create_token(busy, *PERMISSIONS)) as as_busy,
        herald.client(herald.create_token(quiet, *PERMISSIONS)) as as_quiet,
    ):
        assert as_busy.post("/event", json=_events(15, "first")).status_code == 201
        _over_budget(as_busy.post("/event", json=_events(21, "huge")), "burst", 422)
        assert as_busy.post("/event", json=_events(5, "fits")).status_code == 201
        refused = as_busy.post("/event", json=_events(10, "over"))
        problem = _over_budget(refused, "events_per_second")
        assert int(refused.headers["retry-after"]) >= 900  # 10 events at 0.01 per second
        assert "0.01 events per second (burst 20)" in problem["detail"]

        # a provider's streamer gets the same answer, and retries the batch later; inside
        # the wait given, a write is refused before its body is read
        records = [emnify_record(f"budget-{n}", alert=1) for n in range(10)]
        refused = as_busy.post("/ingest/emnify", content=orjson.dumps(records))
        _over_budget(refused, "events_per_second")
        assert int(refused.headers["retry-after"]) >= 900
        assert as_busy.post("/event", json=_events(1, "one")).status_code == 429
        assert _stored(as_busy) == 20  # nothing of the refused batches

        for _ in range(3):  # the default budget (a burst of 3,000) is the neighbour's own
            assert as_quiet.post("/event", json=_events(25, "quiet")).status_code == 201
        assert _stored(as_quiet) == 75

    shown = _limits(herald, busy)
    assert "0.01 events per second, 20 at once (burst)" in shown
    assert "bytes per day" in _limits(herald, busy, "--events-per-second", "default")


def test_bytes_over_an_organisations_day_answer_429_until_the_next_day(
    herald: Herald,
) -> None:
    organisation = herald.create_org("Chatty")
    _limits(herald, organisation, "--bytes-per-day", "4000")
    batch = orjson.dumps(_events(20, "x" * 40))  # about 1.6 kB
    with herald.client(herald.create_token(organisation, *PERMISSIONS)) as client:
        assert client.post("/event", content=batch).status_code == 201
        assert client.post("/event", content=batch).status_code == 201
        refused = client.post("/event", content=batch)
        problem = _over_budget(refused, "bytes_per_day")
        assert 1 <= int(refused.headers["retry-after"]) <= 86_400  # the next UTC day
        assert "4000 bytes per day" in problem["detail"]
        huge = orjson.dumps(_events(60, "x" * 40))  # more than a whole day's bytes
        _over_budget(client.post("/event", content=huge), "bytes_per_day", 422)
        assert _stored(client) == 40


def test_limits_refuse_bad_values_with_a_message(herald: Herald) -> None:
    database = ("--database", herald.database_url)
    org = str(herald.create_org("One"))
    cases = [
        (["org", "limits", "4242", "--burst", "10"], "no organisation 4242"),
        (["org", "limits", org, "--burst", "0"], "--burst must be a number above 0"),
        (["org", "limits", org, "--events-per-second", "fast"], "--events-per-second must"),
        (["org", "limits", org, "--bytes-per-day", "nan"], "--bytes-per-day must"),
    ]
    for args, message in cases:
        result = herald.cli(*args, *database, check=False)
        assert result.returncode == 1, args
        assert message in result.stderr + result.stdout, (args, result.stderr)
        assert "Traceback" not in result.stderr
