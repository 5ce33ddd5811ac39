"""Usage end to end: the app (in process) on each backend sums usage records and closed
sessions per endpoint and day, exactly and once, and answers in emnify's shape."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import jsonschema
import pytest

from herald.store import open_store
from herald.store.usage import MAX_DAILY
from herald.store.usage_records import UsageRecord
from herald.timefmt import format_ms, now_ms
from tests.support.herald import Herald

MIN = 60_000
DAY = 24 * 60 * MIN
NOW = now_ms()
TODAY = NOW - NOW % DAY
D1 = TODAY - DAY  # yesterday (UTC): every record of it is in the past and in the window
D2 = TODAY - 2 * DAY

# emnify's published shapes (its OpenAPI: /endpoint/{id}/stats/daily items, and the month
# entries of the /stats family), written out as JSON Schema.
_VOLUME = {
    "type": "object",
    "required": ["volume", "volume_tx", "volume_rx"],
    "properties": {
        "volume": {"type": "number"},
        "volume_tx": {"type": "number"},
        "volume_rx": {"type": "number"},
        "traffic_type": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "description": {"type": "string"},
                "unit": {"type": "string"},
            },
        },
    },
}
EMNIFY_DAILY = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["date", "data", "sms"],
        "properties": {
            "date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
            "data": _VOLUME,
            "sms": _VOLUME,
        },
    },
}
_MONTH_VOLUME = {
    **_VOLUME,
    "required": ["volume", "volume_tx", "volume_rx", "traffic_type_id", "month"],
    "properties": {
        **_VOLUME["properties"],  # type: ignore[dict-item]
        "traffic_type_id": {"type": "number"},
        "month": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
    },
}
_MONTH = {"type": "object", "properties": {"data": _MONTH_VOLUME, "sms": _MONTH_VOLUME}}
EMNIFY_STATS = {
    "type": "object",
    "required": ["last_hour"],
    "properties": {
        "last_month": _MONTH,
        "current_month": _MONTH,
        "last_hour": {
            "type": "object",
            "properties": {"data": {"type": "array"}, "sms": {"type": "array"}},
        },
    },
}


@dataclass
class Tenants:
    a: int
    b: int
    a_ingest: str
    b_ingest: str
    a_events: str


@pytest.fixture
def tenants(herald: Herald) -> Tenants:
    a, b = herald.create_org("Acme IoT"), herald.create_org("Bolt Mobility")
    return Tenants(
        a=a,
        b=b,
        a_ingest=herald.create_token(a, "ingest:1nce", "ingest:emnify", "event:read"),
        b_ingest=herald.create_token(b, "ingest:1nce", "event:read"),
        a_events=herald.create_token(a, "event:read", "event:create"),
    )


def usage(
    record_id: int, endpoint: int, end_ms: int, rx: str, tx: str, *, sms: bool = False
) -> dict[str, Any]:
    """A 1NCE usage record as the reference lists its fields (volumes as the decimals sent)."""
    total = str(Decimal(rx) + Decimal(tx))
    return {
        "id": record_id,
        "traffic_type": {"id": 6, "description": "SMS"}
        if sms
        else {"id": 5, "description": "Data"},
        "start_timestamp": format_ms(end_ms - 10 * MIN),
        "end_timestamp": format_ms(end_ms),
        "organisation": {"id": 39089, "name": "Provider's own org"},
        "endpoint": {"id": endpoint, "name": f"tracker-{endpoint}", "imei": "8675309"},
        "sim": {"id": 1931060, "iccid": "8988303000000001234", "msisdn": "883260000001"},
        "imsi": "901405100000001",
        "operator": {"id": 2, "name": "Telekom", "mnc": "01", "country": {"id": 74}},
        "tariff": {"id": 1, "name": "Standard", "ratezone": {"id": 1, "name": "Zone 1"}},
        "currency": {"id": 1, "symbol": "€", "code": "EUR"},
        "cost": 0.0012345678,
        "volume": {"total": float(total), "rx": float(rx), "tx": float(tx)},
    }


def closed_session(endpoint: int, at_ms: int, rx: str, tx: str) -> dict[str, Any]:
    """A Delete PDP Context with its volume, as emnify's example writes it."""
    total = Decimal(rx) + Decimal(tx)
    return {
        "event_type": {"id": 5},
        "timestamp": format_ms(at_ms),
        "description": "PDP Context deleted.",
        "endpoint": {"id": endpoint, "name": f"tracker-{endpoint}"},
        "detail": {
            "name": "Vodafone",
            "volume": {"total": float(total), "rx": float(rx), "tx": float(tx)},
        },
    }


def ingest(client: httpx.Client, records: list[dict[str, Any]]) -> dict[str, Any]:
    response = client.post("/ingest/1nce", json=records)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def daily(client: httpx.Client, endpoint: int, start: int, end: int) -> list[dict[str, Any]]:
    params = {"start_date": _date(start), "end_date": _date(end)}
    response = client.get(f"/endpoint/{endpoint}/stats/daily", params=params)
    assert response.status_code == 200, response.text
    days: list[dict[str, Any]] = response.json()
    jsonschema.validate(days, EMNIFY_DAILY)
    return days


def _date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).date().isoformat()


def _mb(*values: str) -> float:
    return float(sum(Decimal(v) for v in values))


DATA = [("0.418811", "0.223173"), ("1.000001", "0.000009"), ("12.5", "0.1"), ("0.000001", "0")]


def test_usage_records_sum_exactly_once_whatever_the_order(
    herald: Herald, tenants: Tenants
) -> None:
    records = [
        usage(100 + i, 7, D1 + (i + 1) * 60 * MIN, rx, tx) for i, (rx, tx) in enumerate(DATA)
    ]
    records += [
        usage(200, 7, D1 + 5 * MIN, "0", "1", sms=True),  # MO: sent by the device
        usage(201, 7, D1 + 6 * MIN, "0", "1", sms=True),
        usage(202, 7, D1 + 7 * MIN, "1", "0", sms=True),  # MT
        usage(300, 7, D2 + 30 * MIN, "2", "1"),  # the day before
    ]
    shuffled = records[:]
    random.Random(5).shuffle(shuffled)
    with herald.client(tenants.a_ingest) as client:
        first = ingest(client, shuffled[:4])
        assert (first["stored"], first["duplicates"], first["ids"]) == (4, 0, [])
        assert {r["kind"] for r in first["records"]} == {"usage"}
        second = shuffled[4:] + shuffled[:2]  # two retransmitted
        rest = ingest(client, second)
        assert (rest["stored"], rest["duplicates"]) == (len(records) - 4, 2)
        again = ingest(client, records)  # the whole stream re-sent
        assert (again["stored"], again["duplicates"]) == (0, len(records))
        kept = {
            sent["id"]: outcome["id"]
            for batch, answer in ((shuffled[:4], first), (second, rest))
            for sent, outcome in zip(batch, answer["records"], strict=True)
        }
        assert [r["id"] for r in again["records"]] == [kept[r["id"]] for r in records]
        d2, d1 = daily(client, 7, D2, D1)
    rx, tx = [r for r, _ in DATA], [t for _, t in DATA]
    assert d1["date"] == _date(D1)
    assert d1["data"]["volume_rx"] == _mb(*rx)
    assert d1["data"]["volume_tx"] == _mb(*tx)
    assert d1["data"]["volume"] == _mb(*rx, *tx)
    assert d1["data"]["source"] == "records"
    assert (d1["sms"]["volume_tx"], d1["sms"]["volume_rx"], d1["sms"]["volume"]) == (2, 1, 3)
    assert (d2["data"]["volume"], d2["data"]["volume_rx"], d2["sms"]["volume"]) == (3.0, 2.0, 0)


def test_sessions_count_only_on_days_without_data_records(herald: Herald, tenants: Tenants) -> None:
    sessions = [
        closed_session(8, D1 + 60 * MIN, "0.641984", "0.223173"),
        closed_session(8, D1 + 90 * MIN, "1.5", "0.25"),
        closed_session(9, D1 + 60 * MIN, "0.641984", "0.223173"),  # the same traffic as...
        closed_session(9, D2 + 60 * MIN, "4", "1"),  # a day with sessions only
    ]
    with herald.client(tenants.a_events) as client:
        response = client.post("/event", json=sessions)
        assert response.status_code == 201, response.text
    with herald.client(tenants.a_ingest) as client:
        # ... this record: its day's data is the records', the session is not counted again
        ingest(client, [usage(400, 9, D1 + 60 * MIN, "0.641984", "0.223173")])
        only_sessions = daily(client, 8, D1, D1)[0]["data"]
        assert only_sessions == {
            "volume": _mb("0.641984", "0.223173", "1.5", "0.25"),
            "volume_tx": _mb("0.223173", "0.25"),
            "volume_rx": _mb("0.641984", "1.5"),
            "traffic_type": {"id": 5, "description": "Data", "unit": "MB"},
            "source": "sessions",
        }
        d2, d1 = daily(client, 9, D2, D1)
        assert (d1["data"]["volume"], d1["data"]["source"]) == (
            _mb("0.641984", "0.223173"),
            "records",
        )
        assert (d2["data"]["volume"], d2["data"]["source"]) == (5.0, "sessions")
        # a late record for the sessions-only day: from now on the records alone say it
        ingest(client, [usage(401, 9, D2 + 61 * MIN, "4", "1")])
        assert daily(client, 9, D2, D2)[0]["data"]["volume"] == 5.0
        assert daily(client, 9, D2, D2)[0]["data"]["source"] == "records"


def test_stats_shape_isolation_and_refusals(herald: Herald, tenants: Tenants) -> None:
    recent = NOW - 5 * MIN
    with herald.client(tenants.a_ingest) as a, herald.client(tenants.b_ingest) as b:
        ingest(a, [usage(500, 7, recent, "0.5", "0.25"), usage(501, 7, recent, "0", "1", sms=True)])
        ingest(b, [usage(500, 70, recent, "9", "9")])  # the same record id, another tenant
        stats = a.get("/endpoint/7/stats")
        assert stats.status_code == 200, stats.text
        body = stats.json()
        jsonschema.validate(body, EMNIFY_STATS)
        month = "current_month" if _date(recent)[:7] == _date(NOW)[:7] else "last_month"
        assert body[month]["data"]["volume"] == 0.75
        assert body[month]["sms"]["volume_tx"] == 1
        minute = format_ms(recent - recent % MIN)
        assert body["last_hour"]["data"] == [
            {"time": minute, "volume": 0.75, "volume_tx": 0.25, "volume_rx": 0.5}
        ]
        # isolation: each tenant reads only its own endpoints' usage
        assert b.get("/endpoint/7/stats").status_code == 404
        assert b.get("/endpoint/7/stats/daily").status_code == 404
        assert a.get("/endpoint/70/stats/daily").status_code == 404
        assert b.get("/endpoint/70/stats").json()["last_hour"]["data"][0]["volume"] == 18.0
        # bad parameters and records: 422 naming the parameter; records quarantined alone
        bad = a.get("/endpoint/7/stats/daily", params={"start_date": "2026-13-01"})
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "start_date"
        backwards = {"start_date": _date(NOW), "end_date": _date(D2)}
        assert a.get("/endpoint/7/stats/daily", params=backwards).status_code == 422
        good = usage(600, 7, recent, "1", "1")
        answer = ingest(
            a,
            [
                good,
                {**good, "id": 601, "traffic_type": {"id": 7}},
                {**good, "id": 602, "volume": {"rx": "0.0000001", "tx": 0}},
                {**good, "id": 603, "endpoint": None},
                {**good, "id": 604, "end_timestamp": "yesterday"},
                usage(605, 7, NOW - 400 * DAY, "1", "1"),  # past the retention window
            ],
        )
        outcomes = [
            (r["status"], [e["field"] for e in r.get("errors", [])]) for r in answer["records"]
        ]
        assert outcomes == [
            ("stored", []),
            ("quarantined", ["traffic_type.id"]),
            ("quarantined", ["volume.rx"]),
            ("quarantined", ["endpoint.id"]),
            ("quarantined", ["end_timestamp"]),
            ("quarantined", ["end_timestamp"]),
        ]


def test_a_record_past_the_days_sum_bound_is_quarantined_and_the_rest_stored(
    herald: Herald, tenants: Tenants
) -> None:
    """Regression: a day's sum past 2**63 - 1 millionths of a MB failed the whole request on
    PostgreSQL (500, events included: a streamer retried it forever) and turned into a float
    on SQLite. The record that would pass the bound is quarantined with the reason."""
    largest = 10**14 - 1  # a record holds at most 99,999,999.999999 MB
    seed = MAX_DAILY - largest - 5  # the ~92,000 largest records before, in one
    store = open_store(herald.database_url)
    try:
        first = store.usage.save([_stored_usage(tenants.a, seed)])
        assert first[0] is not None
    finally:
        store.close()
    at = D1 + 90 * MIN
    batch = [
        usage(800, 9, at, "99999999.999999", "0"),  # fits: the sum is then MAX_DAILY - 5
        usage(801, 9, at, "99999999.999999", "0"),  # would pass it
        {**closed_session(9, at, "1", "1"), "id": 900},  # an event of the same request
        usage(802, 9, at, "0.000005", "0"),  # fits exactly
        usage(803, 10, at, "99999999.999999", "0"),  # another endpoint has room
    ]
    with herald.client(tenants.a_ingest) as client:
        response = client.post("/ingest/emnify", json=batch)
        assert response.status_code == 200, response.text
        records = response.json()["records"]
        assert [r["status"] for r in records] == [
            "stored",
            "quarantined",
            "stored",
            "stored",
            "stored",
        ]
        reason = records[1]["errors"][0]
        assert reason["field"] == "volume"
        assert "9223372036854.775807 MB" in reason["reason"], reason
        rejected = client.get(f"/ingest/rejected/{records[1]['rejected_id']}").json()
        assert rejected["errors"] == records[1]["errors"]
        retried = client.post(f"/ingest/rejected/{records[1]['rejected_id']}/retry")
        assert retried.status_code == 200, retried.text
        assert retried.json()["status"] == "quarantined"  # still past the bound: it stays
        assert client.get(f"/ingest/rejected/{records[1]['rejected_id']}").status_code == 200
        (day,) = daily(client, 9, D1, D1)
    assert day["data"]["volume_rx"] == float(Decimal(MAX_DAILY).scaleb(-6))
    store = open_store(herald.database_url)
    try:  # exact, as kept: an integer, not a float near it
        assert store.usage.days(tenants.a, 9, D1 // DAY, D1 // DAY)[0].data_rx == MAX_DAILY
    finally:
        store.close()


def _stored_usage(organisation_id: int, rx: int) -> UsageRecord:
    """One data record of endpoint 9 on day D1 as the store keeps it."""
    return UsageRecord(
        id=1,
        organisation_id=organisation_id,
        provider="emnify",
        record_id="seed",
        endpoint_id=9,
        traffic_type=5,
        start_ms=None,
        end_ms=D1 + MIN,
        day=D1 // DAY,
        rx=rx,
        tx=0,
        total=rx,
        received_ms=D1 + MIN,
        record=b'{"id":"seed"}',
    )
