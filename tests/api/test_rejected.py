"""The ingest quarantine's bounds (issue 28, defect 1), through the app (in process) on
each backend: a record larger than a quarantined record may be keeps its first bytes with
its size and sha256; each organisation's quarantine holds so many records (a full one
refuses the unusable records of a batch, never the usable ones); a page and a bulk retry
read so many bytes at most; and every quarantine route takes one of the organisation's
query slots."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from herald.api.app import create_app
from herald.auth import issue_token
from herald.config import Settings
from tests.support.herald import Herald
from tests.support.inproc import start_in_process
from tests.support.records import emnify_record

RECORD_BYTES = 2048
QUOTA = 5
READ_BYTES = 4096
ENV = {
    "HERALD_QUARANTINE_RECORD_BYTES": str(RECORD_BYTES),
    "HERALD_QUARANTINE_RECORDS": str(QUOTA),
    "HERALD_QUARANTINE_READ_BYTES": str(READ_BYTES),
}


@pytest.fixture(scope="module")
def herald(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Iterator[Herald]:
    """One server for the module and backend, its quarantine bounds small; each test works
    in an organisation of its own."""
    server = start_in_process(
        tmp_path_factory.mktemp("rejected") / "herald", env=ENV, database_url=module_database_url
    )
    try:
        yield server
    finally:
        server.stop()


def _client(herald: Herald, name: str) -> httpx.Client:
    organisation = herald.create_org(name)
    return herald.client(herald.create_token(organisation, "ingest:emnify", "event:read"))


def _unusable(number: int, padding: int = 0) -> dict[str, Any]:
    """A record Herald cannot use (its alert is neither true nor false)."""
    return emnify_record(str(97000 + number), alert="sometimes", description="p" * padding)


def _post(client: httpx.Client, batch: list[Any]) -> dict[str, Any]:
    response = client.post("/ingest/emnify", json=batch)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_a_record_too_large_keeps_its_first_bytes_its_size_and_its_hash(
    herald: Herald,
) -> None:
    """The attack's record: one long JSON string in an array. Its first bytes are kept (cut
    between characters) with its size and sha256, and the answers say it cannot be retried;
    a record that fits is kept whole, and is retried as before."""
    huge = "é" * 30_000 + "the end"
    sent = orjson.dumps(huge)
    fits = _unusable(1, padding=RECORD_BYTES - 400)
    with _client(herald, "large records") as client:
        answer = _post(client, [huge, fits])
        again = _post(client, [huge])
        cut_id, whole_id = (record["rejected_id"] for record in answer["records"])
        cut = client.get(f"/ingest/rejected/{cut_id}").json()
        whole = client.get(f"/ingest/rejected/{whole_id}").json()
        retried = client.post(f"/ingest/rejected/{cut_id}/retry").json()
        after_retry = client.get(f"/ingest/rejected/{cut_id}").json()
        bulk = client.post("/ingest/rejected/retry").json()
    assert answer["quarantined"] == 2 and answer["refused"] == 0
    note = answer["records"][0]["errors"][-1]
    assert note["field"] == "record" and "cannot be retried" in note["reason"]
    assert again["records"][0]["rejected_id"] == cut_id  # the same record: kept once
    assert (cut["truncated"], cut["record"], cut["size"]) == (True, None, len(sent))
    assert cut["sha256"] == hashlib.sha256(sent).hexdigest()
    prefix = cut["record_prefix"].encode()
    assert len(prefix) <= RECORD_BYTES and sent.startswith(prefix) and len(prefix) > 2000
    assert cut["errors"][-1] == note
    assert whole["truncated"] is False and whole["record"] == fits  # fits: kept whole
    assert whole["size"] == len(orjson.dumps(fits)) > RECORD_BYTES - 400
    assert retried["status"] == "quarantined"
    assert "cannot be ingested again" in retried["errors"][0]["reason"]
    assert after_retry["attempts"] == 1 and after_retry["errors"] == cut["errors"]
    assert (bulk["retried"], bulk["remaining"], bulk["unretryable"]) == (1, 2, 1)
    assert [r["rejected_id"] for r in bulk["records"]] == [whole_id]


def test_a_full_quarantine_refuses_unusable_records_and_stores_usable_ones(
    herald: Herald,
) -> None:
    with _client(herald, "full quarantine") as client:
        usable = emnify_record("97100")
        batch = [_unusable(i) for i in range(QUOTA + 2)] + [usable]
        answer = _post(client, batch)
        resent = _post(client, batch)
        listed = client.get("/ingest/rejected")
        first = answer["records"][0]["rejected_id"]
        assert client.delete(f"/ingest/rejected/{first}").status_code == 204
        room = _post(client, batch[QUOTA : QUOTA + 1])
        events = client.get("/event", params={"provider": "emnify"}).json()
    statuses = [record["status"] for record in answer["records"]]
    assert statuses == ["quarantined"] * QUOTA + ["refused"] * 2 + ["stored"]
    assert (answer["stored"], answer["quarantined"], answer["refused"]) == (1, QUOTA, 2)
    assert len(answer["ids"]) == 1 and answer["ids"][0] == answer["records"][-1]["id"]
    refused = answer["records"][QUOTA]
    assert "rejected_id" not in refused and "id" not in refused
    assert refused["errors"][0]["field"] == "alert"  # why it was unusable, then why not kept
    assert refused["errors"][-1]["field"] == "quarantine"
    assert f"at most {QUOTA} records" in refused["errors"][-1]["reason"]
    # sent again: the records it holds are found, the others still refused
    assert [r["status"] for r in resent["records"]] == [*statuses[:-1], "duplicate"]
    assert [r.get("rejected_id") for r in resent["records"][:QUOTA]] == [
        r["rejected_id"] for r in answer["records"][:QUOTA]
    ]
    assert listed.headers["X-Total-Count"] == str(QUOTA)
    assert room["records"][0]["status"] == "quarantined"  # a discard made room
    assert [event["external_id"] for event in events] == ["97100"]
    scraped = httpx.get(
        f"{herald.url}/metrics", headers={"Authorization": f"Bearer {herald.admin_token}"}
    ).text
    assert 'herald_ingest_quarantine_full_total{provider="emnify"}' in scraped


def test_pages_and_retries_read_a_bounded_number_of_bytes(herald: Herald) -> None:
    """Records of ~1.5 KB, pages of at most 4 KiB of records: two a page whatever per_page
    asks, X-Next-Cursor leads through them all once; a bulk retry takes as many."""
    with _client(herald, "paged quarantine") as client:
        answer = _post(client, [_unusable(200 + i, padding=1200) for i in range(QUOTA)])
        ids = sorted((r["rejected_id"] for r in answer["records"]), reverse=True)
        seen: list[int] = []
        sizes: list[int] = []
        params: dict[str, Any] = {"per_page": 1000}
        while True:
            page = client.get("/ingest/rejected", params=params)
            assert page.status_code == 200, page.text
            seen += [record["id"] for record in page.json()]
            sizes.append(len(page.content))
            if "X-Next-Cursor" not in page.headers:
                break
            params = {"per_page": 1000, "cursor": page.headers["X-Next-Cursor"]}
        mixed = client.get("/ingest/rejected", params={"page": 2, "cursor": ids[0]})
        bulk = client.post("/ingest/rejected/retry", params={"limit": 1000}).json()
    assert seen == ids and len(sizes) == 3
    assert max(sizes) < READ_BYTES + 2048  # the records' bytes, and the JSON around them
    assert page.headers["X-Total-Count"] == str(QUOTA)
    assert mixed.status_code == 400 and mixed.json()["errors"][0]["field"] == "cursor"
    assert (bulk["retried"], bulk["quarantined"], bulk["remaining"]) == (2, 2, QUOTA)
    assert [r["rejected_id"] for r in bulk["records"]] == ids[::-1][:2]  # the oldest first


def test_every_quarantine_route_takes_a_query_slot(tmp_path: Path, database_url: str) -> None:
    """With the organisation's one query slot taken, reading or retrying its quarantine
    answers 429 (the routes read and serialise records in a slot, off the event loop);
    given back, they answer."""
    settings = Settings(
        database_url=database_url,
        demo=False,
        delivery_enabled=False,
        queries_per_organisation=1,
        secret_key_file=str(tmp_path / "secret-key"),
    )
    app = create_app(settings)

    async def scenario() -> tuple[list[int], list[int]]:
        async with app.router.lifespan_context(app):
            services = app.state.services
            organisation = services.store.organisations.create("slotted").id
            secret, _ = issue_token(
                services.store,
                organisation_id=organisation,
                permissions=["ingest:emnify", "event:read"],
            )
            transport = httpx.ASGITransport(app=app)
            headers = {"Authorization": f"Bearer {secret}"}
            async with httpx.AsyncClient(
                transport=transport, base_url="http://herald/api/v1", headers=headers
            ) as client:
                posted = await client.post("/ingest/emnify", json=[_unusable(300)])
                rejected_id = posted.json()["records"][0]["rejected_id"]
                calls = [
                    ("GET", "/ingest/rejected"),
                    ("GET", f"/ingest/rejected/{rejected_id}"),
                    ("POST", f"/ingest/rejected/{rejected_id}/retry"),
                    ("POST", "/ingest/rejected/retry"),
                    ("DELETE", f"/ingest/rejected/{rejected_id}"),
                ]
                give_back = services.query_slots.take(organisation)
                busy = [(await client.request(m, path)).status_code for m, path in calls]
                give_back()
                free = [(await client.request(m, path)).status_code for m, path in calls]
        return busy, free

    busy, free = asyncio.run(scenario())
    assert busy == [429, 429, 429, 429, 429]
    assert free == [200, 200, 200, 200, 204]
