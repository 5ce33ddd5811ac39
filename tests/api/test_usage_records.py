"""1NCE usage records read back as sent, cost, currency and tariff included (issue #34
point 6): ``GET /endpoint/{id}/usage/records`` over the app (in process) on both backends."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from herald.timefmt import format_ms
from tests.support.herald import Herald
from tests.support.inproc import start_in_process

MINUTE_MS = 60_000


@pytest.fixture(scope="module")
def herald(tmp_path_factory: pytest.TempPathFactory, module_database_url: str) -> Iterator[Herald]:
    server = start_in_process(
        tmp_path_factory.mktemp("usage-records") / "herald", database_url=module_database_url
    )
    try:
        yield server
    finally:
        server.stop()


def _usage(record_id: int, endpoint: int, end_ms: int, cost: Any) -> dict[str, Any]:
    """A 1NCE data usage record with the fields the daily sums leave out."""
    return {
        "id": record_id,
        "traffic_type": {"id": 5, "description": "Data"},
        "start_timestamp": format_ms(end_ms - 10 * MINUTE_MS),
        "end_timestamp": format_ms(end_ms),
        "endpoint": {"id": endpoint, "name": f"tracker-{endpoint}"},
        "tariff": {"id": 442, "name": "1NCE Lifetime Flex", "ratezone": {"id": 1}},
        "currency": {"id": 1, "symbol": "€", "code": "EUR"},
        "cost": cost,
        "volume": {"total": "0.750000", "rx": "0.500000", "tx": "0.250000"},
    }


def _day(offset: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() + offset * 86400))


def test_usage_records_read_back_as_sent(herald: Herald) -> None:
    organisation = herald.create_org("usage records")
    other = herald.create_org("usage records elsewhere")
    now = int(time.time() * 1000)
    sent = [_usage(5000 + i, 77, now - (3 - i) * MINUTE_MS, f"0.00{i}5") for i in range(3)]
    sent[0]["cost"] = 0.0012345678  # a float, as some records write it: kept as written
    with herald.client(herald.create_token(organisation, "ingest:1nce", "event:read")) as client:
        stored = client.post("/ingest/1nce", json=sent)
        assert stored.json()["stored"] == 3, stored.text
        # from yesterday: the records of a few minutes ago, also just after midnight UTC
        since = {"start_date": _day(-1)}
        records = client.get("/endpoint/77/usage/records", params=since)
        assert records.status_code == 200, records.text
        assert records.json() == sent[::-1]  # newest first, every field as sent
        newest = records.json()[0]
        assert (newest["cost"], newest["currency"]["code"]) == ("0.0025", "EUR")
        assert newest["tariff"] == {"id": 442, "name": "1NCE Lifetime Flex", "ratezone": {"id": 1}}
        newest_only = client.get("/endpoint/77/usage/records", params={**since, "limit": 1})
        assert newest_only.json() == [sent[2]]
        before = client.get("/endpoint/77/usage/records", params={"end_date": _day(-2)})
        assert before.status_code == 200 and before.json() == []
        for params, field in (
            ({"limit": "0"}, "limit"),
            ({"limit": "9" * 5000}, "limit"),
            ({"colour": "red"}, "colour"),
            ({"start_date": "tomorrow"}, "start_date"),
        ):
            refused = client.get("/endpoint/77/usage/records", params=params)
            assert refused.status_code == 422, (params, refused.text)
            assert refused.json()["errors"][0]["field"] == field
        assert client.get("/endpoint/78/usage/records").status_code == 404
    with herald.client(herald.create_token(other, "event:read")) as outsider:
        assert outsider.get("/endpoint/77/usage/records").status_code == 404
