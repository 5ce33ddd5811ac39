"""The retention rule over the app (in process), on both backends.

An event is kept for its organisation's retention after its own timestamp; an event whose
timestamp is already outside the window is refused at ingest (422 naming ``timestamp``),
never acknowledged and then purged.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.ingest.examples import emnify_examples, onece_examples
from tests.support.herald import Herald
from tests.support.inproc import start_in_process

PURGE_SECONDS = 0.2


@pytest.fixture
def herald(database_url: str, tmp_path: Path) -> Iterator[Herald]:
    """A server whose default retention is 1 day, purging every 0.2 s."""
    server = start_in_process(
        tmp_path / "herald",
        env={
            "HERALD_RETENTION_DAYS": "1",
            "HERALD_PURGE_INTERVAL_SECONDS": str(PURGE_SECONDS),
        },
        database_url=database_url,
    )
    try:
        yield server
    finally:
        server.stop()


def _ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


def _event(organisation: int, timestamp: str, code: int = 10001) -> dict[str, Any]:
    return {
        "event_type": {"id": code},
        "organisation": {"id": organisation},
        "timestamp": timestamp,
    }


def _refusals(response: httpx.Response) -> list[tuple[str, int | None, str]]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return [(e["field"], e.get("index"), e["reason"]) for e in response.json()["errors"]]


def _total(client: httpx.Client) -> int:
    return int(client.get("/event", params={"per_page": 1}).headers["X-Total-Count"])


def _purged_twice(herald: Herald) -> None:
    """Wait for at least two purge runs (the loop's health records each)."""
    time.sleep(PURGE_SECONDS * 4)
    ready = httpx.get(f"{herald.url}/ready").json()
    assert ready["loops"]["retention"]["healthy"] is True, ready


def test_an_event_older_than_the_window_is_refused_a_backfill_within_it_kept(
    herald: Herald,
) -> None:
    with herald.client(herald.admin_token) as client:
        old = client.post("/event", json=_event(1, _ago(days=1, minutes=5)))
        assert _refusals(old) == [("timestamp", None, "older than the retention window of 1 day")]
        batch = client.post("/event", json=[_event(1, _ago(hours=23)), _event(1, _ago(days=3))])
        assert _refusals(batch) == [
            ("timestamp", 1, "older than the retention window of 1 day")
        ]  # one bad event refuses the batch: nothing is stored
        assert _total(client) == 0

        backfill = client.post("/event", json=[_event(1, _ago(hours=h)) for h in (23, 12, 1)])
        assert backfill.status_code == 201, backfill.text
        _purged_twice(herald)
        assert _total(client) == 3  # acknowledged, kept for its retention


def test_retention_per_organisation_is_set_changed_and_purged(herald: Herald) -> None:
    long = int(
        herald.cli(
            "org", "create", "Long", "--retention-days", "10", "--database", herald.database_url
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    listed = herald.cli("org", "list", "--database", herald.database_url).stdout
    assert "1 (default)" in listed and "10" in listed
    with herald.client(herald.admin_token) as client:
        five_days = client.post("/event", json=_event(long, _ago(days=5)))
        assert five_days.status_code == 201, five_days.text
        assert _refusals(client.post("/event", json=_event(1, _ago(days=5))))[0][2] == (
            "older than the retention window of 1 day"
        )
        assert _refusals(client.post("/event", json=_event(long, _ago(days=11))))[0][2] == (
            "older than the retention window of 10 days"
        )
        newest = client.post("/event", json=_event(long, _ago(seconds=1)))  # SQLite keeps the
        assert newest.status_code == 201  # newest row of the log (its position) for later
        _purged_twice(herald)
        assert client.get(f"/event/{five_days.json()['id']}").status_code == 200

        changed = herald.cli("org", "retention", str(long), "2", "--database", herald.database_url)
        assert "keeps events 2 days" in changed.stdout
        deadline = time.monotonic() + 20
        while client.get(f"/event/{five_days.json()['id']}").status_code == 200:
            assert time.monotonic() < deadline, "a shorter retention did not purge"
            time.sleep(0.1)
        time.sleep(6)  # the API caches an organisation for a few seconds
        assert _refusals(client.post("/event", json=_event(long, _ago(days=3))))[0][2] == (
            "older than the retention window of 2 days"
        )
    refused = herald.cli(
        "org", "retention", str(long), "0", "--database", herald.database_url, check=False
    )
    assert refused.returncode != 0 and "from 1 to 366" in refused.stderr
    missing = herald.cli(
        "org", "retention", "999", "5", "--database", herald.database_url, check=False
    )
    assert missing.returncode != 0 and "no organisation 999" in missing.stderr


def test_the_reference_examples_as_published_are_refused_not_purged_later(
    herald: Herald,
) -> None:
    """Issue 16: all 73 example records of the reference documents (2017-2022) were
    acknowledged, then gone after the next purge. A provider's are acknowledged and
    quarantined (a stream never gets stuck), the API refuses them, each naming why."""
    emnify = emnify_examples(as_published=True)
    onece = [record for _, record in onece_examples(as_published=True)]
    assert len(emnify) + len(onece) == 73
    organisation = herald.create_org("Examples")
    token = herald.create_token(organisation, "ingest:emnify", "ingest:1nce", "event:read")
    with herald.client(token) as client:
        for path, records in (("/ingest/emnify", emnify), ("/ingest/1nce", onece)):
            answer = client.post(path, json=records)
            assert answer.status_code == 200, answer.text
            outcome = answer.json()
            assert (outcome["stored"], outcome["quarantined"]) == (0, len(records))
            reasons = {
                (error["field"], error["reason"])
                for record in outcome["records"]
                for error in record["errors"]
            }
            assert reasons == {("timestamp", "older than the retention window of 1 day")}
        assert _total(client) == 0
        rejected = client.get("/ingest/rejected", params={"per_page": 1})
        assert int(rejected.headers["X-Total-Count"]) == 73
    with herald.client(herald.admin_token) as admin:  # the platform API alike
        for example in emnify:
            example["organisation"] = {"id": organisation}
        refusals = _refusals(admin.post("/event", json=emnify))
        assert {(f, i) for f, i, _ in refusals if f == "timestamp"} == {
            ("timestamp", i) for i in range(len(emnify))
        }


def test_a_thousand_old_days_create_no_partition_and_answer_422(
    herald: Herald, backend: str
) -> None:
    """Issue 17 #1: 1,000 events on 1,000 different old days (from year 1200 on) made 1,011
    PostgreSQL partitions, and every tenant's queries failed. They are refused; no write
    creates a partition."""
    before = _partitions(herald.database_url) if backend == "postgres" else []
    organisation = herald.create_org("Attacker")
    token = herald.create_token(organisation, "event:create", "event:read")
    start = datetime(1200, 1, 1, tzinfo=UTC)
    events = [
        {"event_type": {"id": 10001}, "timestamp": (start + timedelta(days=day)).isoformat()}
        for day in range(500)
    ] + [{"event_type": {"id": 10001}, "timestamp": _ago(days=2 + day)} for day in range(500)]
    with herald.client(token) as client:
        # Years before 1970 are refused as they are read; the batch holds nothing stored.
        refusals = _refusals(client.post("/event", json=events))
        assert [index for field, index, _ in refusals if field == "timestamp"] == list(range(500))
        # The rest alone: older than the organisation's retention window.
        refusals = _refusals(client.post("/event", json=events[500:]))
        assert [index for field, index, _ in refusals if field == "timestamp"] == list(range(500))
        assert _total(client) == 0
        assert client.post("/event", json={"event_type": {"id": 10001}}).status_code == 201
        assert client.get("/event").status_code == 200
    if backend == "postgres":  # the purge may have dropped days since: none is new
        assert set(_partitions(herald.database_url)) <= set(before)


def _partitions(database_url: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'events'::regclass ORDER BY 1"
        ).fetchall()
    return [row[0] for row in rows]
