"""emnify's canonical example records, posted by an internal token, read back unchanged
(dated a few days ago: as published, 2017-2022, they are older than the retention window)."""

from __future__ import annotations

import pytest

from herald.timefmt import parse_timestamp
from tests.conftest import SHARED_REFERENCE
from tests.ingest.examples import emnify_examples
from tests.support.herald import Herald

EMNIFY_DOC = SHARED_REFERENCE / "emnify-event-types.md"
PLATFORM_ASSIGNED = {"id", "timestamp", "event_severity", "event_source"}


@pytest.mark.skipif(
    not EMNIFY_DOC.exists(), reason=f"reference documents not found at {EMNIFY_DOC}"
)
def test_every_emnify_example_reads_back_equal(herald: Herald) -> None:
    examples = emnify_examples()
    assert len(examples) >= 40
    for organisation_id, name in {
        e["organisation"]["id"]: e["organisation"]["name"] for e in examples
    }.items():
        herald.create_org(name, organisation_id)

    with herald.client(herald.admin_token) as client:
        response = client.post("/event", json=examples)
        assert response.status_code == 201, response.text
        stored = response.json()
        for example, record in zip(examples, stored, strict=True):
            read = client.get(f"/event/{record['id']}").json()
            assert read == record
            assert read["external_id"] == str(example["id"])
            assert parse_timestamp(read["timestamp"]) == parse_timestamp(example["timestamp"])
            # Levels keep their ids; descriptions are normalised ("WARN" -> "Warn").
            for level in ("event_severity", "event_source"):
                assert read[level]["id"] == example[level]["id"]
            assert read["alert"] is bool(example["alert"])
            for field, value in example.items():
                if field in PLATFORM_ASSIGNED or field == "alert":
                    continue
                assert read.get(field) == value, (example["id"], field)

        # Posting the same records again stores nothing new.
        again = client.post("/event", json=examples).json()
        assert [r["id"] for r in again] == [r["id"] for r in stored]
        total = client.get("/event", params={"per_page": 1}).headers["X-Total-Count"]
        assert int(total) == len(examples)
