"""1NCE-shaped reads (issue #34, point 3): the app (in process) on each backend answers
1NCE's SIM management paths under /1nce/management-api: a SIM's events by ICCID (page,
pageSize, sort), its connectivity status and its daily usage, in 1NCE's shapes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import jsonschema
import orjson
import pytest

from herald.devices.onece import day_costs
from herald.timefmt import format_ms, now_ms
from tests.support.herald import Herald
from tests.support.waiting import wait_until

MIN = 60_000
DAY = 24 * 60 * MIN
NOW = now_ms()
TODAY = NOW - NOW % DAY
D1 = TODAY - DAY  # yesterday (UTC)
D2 = TODAY - 2 * DAY
T0 = NOW - 3 * 60 * MIN  # the events' times: minutes after it, all in the past
X, Y, Z, W = "8988303000000001234", "8988303000000005678", "8988303000000009999", "89883030000"
VODAFONE = {
    "id": 3,
    "name": "Vodafone",
    "country": {"id": 74, "name": "Germany", "mcc": "262", "iso_code": "de"},
    "mnc": [{"id": 3, "mnc": "02"}],
}
PREFIX = "/1nce/management-api/v1/sims"

# 1NCE's SIM_Event and EventCollection (its SIM management OpenAPI), as JSON Schema.
_TEXT = {"type": ["string", "null"]}
_OPTIONAL = ("iccid", "imei", "imsi", "country", "operator", "mcc", "mnc")
ONECE_EVENTS = {
    "type": "object",
    "required": ["events", "totalEvents", "totalPages"],
    "properties": {
        "totalEvents": {"type": "integer"},
        "totalPages": {"type": "integer"},
        "events": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["timestamp", "event_type", "alert", "event_severity"],
                "properties": {
                    "timestamp": {
                        "type": "string",
                        "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$",
                    },
                    "event_type": {"type": "string"},
                    **dict.fromkeys(_OPTIONAL, _TEXT),
                    "alert": {"type": "boolean"},
                    "event_severity": {"type": "string"},
                },
            },
        },
    },
}
_VOLUME = {
    "type": "object",
    "required": ["volume", "volume_rx", "volume_tx", "traffic_type"],
    "properties": {
        "volume": {"type": "string"},
        "volume_rx": {"type": "string"},
        "volume_tx": {"type": "string"},
        "traffic_type": {
            "type": "object",
            "required": ["id", "description", "unit"],
        },
    },
}
ONECE_USAGE = {
    "type": "object",
    "required": ["stats"],
    "properties": {
        "stats": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["date", "data", "sms"],
                "properties": {"date": {"type": "string"}, "data": _VOLUME, "sms": _VOLUME},
            },
        }
    },
}


@dataclass
class Tenants:
    a: str
    b: str


@pytest.fixture
def tenants(herald: Herald) -> Tenants:
    a, b = herald.create_org("Acme IoT"), herald.create_org("Bolt Mobility")
    permissions = ("event:read", "event:create", "ingest:1nce")
    return Tenants(a=herald.create_token(a, *permissions), b=herald.create_token(b, *permissions))


def sim_event(
    type_id: int, minute: int, iccid: str, endpoint: int | None = 7, **fields: Any
) -> dict[str, Any]:
    """An event of the SIM ``iccid`` (in endpoint ``endpoint``), as 1NCE's records carry it."""
    event: dict[str, Any] = {
        "event_type": {"id": type_id},
        "timestamp": format_ms(T0 + minute * MIN),
        "sim": {"id": int(iccid[-6:]), "iccid": iccid, "msisdn": "883260000001"},
        "imsi": {"id": 5, "imsi": "901405100000001"},
        **fields,
    }
    if endpoint is not None:
        event["endpoint"] = {"id": endpoint, "name": f"tracker-{endpoint}", "imei": "8675309"}
    return event


def post(client: httpx.Client, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    response = client.post("/api/v1/event", json=events)
    assert response.status_code == 201, response.text
    stored: list[dict[str, Any]] = response.json()
    return stored


def client_for(herald: Herald, token: str) -> httpx.Client:
    """A client at the server's root, as a 1NCE client's base URL would be."""
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.Client(base_url=herald.url, headers=headers, timeout=30)


def problem(response: httpx.Response, status: int, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    if field is not None:
        assert field in response.text, response.text


def test_a_sims_events_by_iccid_page_and_sort(herald: Herald, tenants: Tenants) -> None:
    with client_for(herald, tenants.a) as a, client_for(herald, tenants.b) as b:
        mine = post(
            a,
            [
                sim_event(1, i, X, detail=VODAFONE) if i % 2 == 0 else sim_event(10001, i, X)
                for i in range(12)
            ]
            + [sim_event(10001, 20 + i, Y, endpoint=8) for i in range(3)],
        )
        post(b, [sim_event(10001, i, X) for i in range(2)])  # another tenant's, same ICCID

        first = a.get(f"{PREFIX}/{X}/events", params={"pageSize": 5})
        assert first.status_code == 200, first.text
        page = first.json()
        jsonschema.validate(page, ONECE_EVENTS)
        assert (page["totalEvents"], page["totalPages"], len(page["events"])) == (12, 3, 5)
        headers = first.headers
        assert (headers["X-Total-Count"], headers["X-Total-Pages"]) == ("12", "3")
        assert (headers["X-Current-Page"], headers["X-Count-Per-Page"]) == ("1", "5")

        pages = [page["events"]] + [
            a.get(f"{PREFIX}/{X}/events", params={"pageSize": 5, "page": n}).json()["events"]
            for n in (2, 3)
        ]
        assert [len(p) for p in pages] == [5, 5, 2]
        times = [event["timestamp"] for p in pages for event in p]
        assert times == sorted(times, reverse=True) and len(set(times)) == 12  # newest first
        oldest = a.get(f"{PREFIX}/{X}/events", params={"sort": "timestamp,id", "pageSize": 1000})
        assert [e["timestamp"] for e in oldest.json()["events"]] == sorted(times)

        located = pages[2][-1]  # the oldest: an Update location with its network
        assert located == {
            "timestamp": mine[0]["timestamp"][:-1] + "+0000",
            "event_type": "Update location",
            "iccid": X,
            "imei": "8675309",
            "imsi": "901405100000001",
            "country": "Germany",
            "operator": "Vodafone",
            "mcc": "262",
            "mnc": "02",
            "alert": False,
            "event_severity": "Info",
        }
        custom = pages[2][0]  # a custom event: no network, its fields null
        assert (custom["country"], custom["operator"], custom["mcc"]) == (None, None, None)

        assert b.get(f"{PREFIX}/{X}/events").json()["totalEvents"] == 2  # its own only
        assert a.get(f"{PREFIX}/{Y}/events").json()["totalEvents"] == 3
        # emnify's /sim/{id}/event keeps taking the SIM's id, not its ICCID
        assert a.get(f"/api/v1/sim/{int(X[-6:])}/event").json()[0]["sim"]["iccid"] == X
        assert a.get(f"/api/v1/sim/{X}/event").json() == []

        problem(a.get(f"{PREFIX}/{Z}/events"), 404)  # no event carries it
        problem(a.get(f"{PREFIX}/{X}/events", params={"pageSize": 1001}), 400, "pageSize")
        problem(a.get(f"{PREFIX}/{X}/events", params={"page": 0}), 400, "page")
        problem(a.get(f"{PREFIX}/{X}/events", params={"sort": "colour"}), 400, "sort")
        problem(a.get(f"{PREFIX}/{X}/events", params={"per_page": 5}), 422, "per_page")
        problem(a.get(f"{PREFIX}/not-an-iccid/events"), 400, "iccid")
        with httpx.Client(base_url=herald.url, timeout=30) as anonymous:
            assert anonymous.get(f"{PREFIX}/{X}/events").status_code == 401


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).date().isoformat()


def usage(record_id: int, end_ms: int, rx: str, tx: str, *, sms: bool = False) -> dict[str, Any]:
    """A 1NCE usage record of endpoint 7 (SIM X), as the reference lists its fields."""
    return {
        "id": record_id,
        "traffic_type": {"id": 6, "description": "SMS"}
        if sms
        else {"id": 5, "description": "Data"},
        "start_timestamp": format_ms(end_ms - 10 * MIN),
        "end_timestamp": format_ms(end_ms),
        "endpoint": {"id": 7, "name": "tracker-7"},
        "sim": {"id": 1234, "iccid": X},
        "volume": {"total": float(Decimal(rx) + Decimal(tx)), "rx": float(rx), "tx": float(tx)},
    }


def test_a_sims_status_and_daily_usage(herald: Herald, tenants: Tenants) -> None:
    pdp = {"apn": "iot.1nce.net", "rat_type": 6, "ue_ip_address": "100.64.0.7"}
    with client_for(herald, tenants.a) as a:
        post(
            a,
            [
                sim_event(1, 0, X, detail=VODAFONE),
                sim_event(3, 1, X, detail={**VODAFONE, "pdp_context": pdp}),
                sim_event(1, 0, Z, endpoint=8, detail=VODAFONE),
                sim_event(9, 1, Z, endpoint=8),  # SIM suspension: blocked
                sim_event(10001, 0, W, endpoint=None),  # no endpoint: no state
            ],
        )
        wait_until(lambda: a.get(f"{PREFIX}/{Z}/status").json()["status"] == "BLOCKED", 60)
        wait_until(lambda: a.get(f"{PREFIX}/{X}/status").json()["status"] == "ONLINE", 60)
        online = a.get(f"{PREFIX}/{X}/status").json()
        location = online["location"]
        assert (location["iccid"], location["imsi"]) == (X, "901405100000001")
        assert location["operator"]["name"] == "Vodafone"
        assert location["country"]["name"] == "Germany"
        assert online["pdp_context"]["apn"] == "iot.1nce.net"
        assert "GPRS" in online["services"]
        assert a.get(f"{PREFIX}/{W}/status").json() == {
            "status": "OFFLINE",
            "location": None,
            "pdp_context": None,
            "services": [],
        }
        problem(a.get(f"{PREFIX}/{Y}/status"), 404)

        ingested = a.post(
            "/api/v1/ingest/1nce",
            json=[
                usage(1, D1 + 60 * MIN, "0.418811", "0.223173"),
                usage(2, D1 + 120 * MIN, "1.000001", "0.000009"),
                usage(3, D1 + 30 * MIN, "0", "1", sms=True),  # MO: sent by the device
                usage(4, D1 + 40 * MIN, "0", "1", sms=True),
                usage(5, D1 + 50 * MIN, "1", "0", sms=True),  # MT
            ],
        )
        assert ingested.status_code == 200, ingested.text
        assert ingested.json()["stored"] == 5, ingested.text
        params = {"start_dt": _day(D2), "end_dt": _day(D1)}
        answer = a.get(f"{PREFIX}/{X}/usage", params=params)
        assert answer.status_code == 200, answer.text
        jsonschema.validate(answer.json(), ONECE_USAGE)
        before, day = answer.json()["stats"]
        assert before["date"] == _day(D2) + "T00:00:00.000Z"
        assert (before["data"]["volume"], before["sms"]["volume"]) == ("0.000000", "0")
        assert day["date"] == _day(D1) + "T00:00:00.000Z"
        assert (day["data"]["volume_rx"], day["data"]["volume_tx"]) == ("1.418812", "0.223182")
        assert day["data"]["volume"] == "1.641994"
        assert (day["sms"]["volume"], day["sms"]["volume_rx"], day["sms"]["volume_tx"]) == (
            "3",
            "2",  # 1NCE: volume_rx counts the MO messages
            "1",
        )
        assert day["data"]["traffic_type"] == {"id": 5, "description": "Data", "unit": "MB"}
        emnify = a.get(
            "/api/v1/endpoint/7/stats/daily",
            params={"start_date": _day(D2), "end_date": _day(D1)},
        ).json()
        assert float(day["data"]["volume"]) == emnify[1]["data"]["volume"]  # the same sums

        problem(a.get(f"{PREFIX}/{X}/usage", params={"start_dt": "yesterday"}), 422, "start_dt")
        late = {"start_dt": _day(D1), "end_dt": _day(D2)}
        problem(a.get(f"{PREFIX}/{X}/usage", params=late), 422, "start_dt")
        problem(a.get(f"{PREFIX}/{X}/usage", params={"start_date": _day(D1)}), 422, "start_date")
        problem(a.get(f"{PREFIX}/{Y}/usage"), 404)


def test_a_days_cost_is_summed_from_its_usage_records(herald: Herald, tenants: Tenants) -> None:
    """1NCE's usage records carry their cost: the usage answer sums a day's, per traffic
    type, where each record has one in one currency; else null (the records themselves are
    at /endpoint/{id}/usage/records)."""
    euro = {"id": 1, "symbol": "€", "code": "EUR"}

    def priced(record: dict[str, Any], cost: Any, currency: Any = euro) -> dict[str, Any]:
        return {**record, "cost": cost, "currency": currency}

    with client_for(herald, tenants.a) as a:
        post(a, [sim_event(1, 0, X, detail=VODAFONE)])
        ingested = a.post(
            "/api/v1/ingest/1nce",
            json=[
                priced(usage(11, D1 + 60 * MIN, "0.5", "0.25"), "0.0012345678"),
                priced(usage(12, D1 + 90 * MIN, "0.5", "0.25"), 0.0025),  # a number
                priced(usage(13, D1 + 30 * MIN, "0", "1", sms=True), "0.09"),
                usage(14, D1 + 40 * MIN, "0", "1", sms=True),  # no cost: the day's is unknown
                priced(usage(15, D2 + 60 * MIN, "0.1", "0"), "0.01"),
                priced(usage(16, D2 + 70 * MIN, "0.1", "0"), "0.01", {**euro, "code": "USD"}),
            ],
        )
        assert ingested.json()["stored"] == 6, ingested.text
        params = {"start_dt": _day(D2 - DAY), "end_dt": _day(D1)}
        answer = a.get(f"{PREFIX}/{X}/usage", params=params)
        assert answer.status_code == 200, answer.text
        jsonschema.validate(answer.json(), ONECE_USAGE)
        empty, mixed, day = answer.json()["stats"]
        assert (day["data"]["cost"], day["data"]["currency"]) == ("0.0037345678", euro)
        assert (day["sms"]["cost"], day["sms"]["currency"]) == (None, None)
        assert mixed["data"]["volume"] == "0.200000"
        assert (mixed["data"]["cost"], mixed["data"]["currency"]) == (None, None)  # 2 currencies
        assert empty["data"]["cost"] is None and empty["sms"]["cost"] is None
    with client_for(herald, tenants.b) as b:  # another tenant's SIM of the same ICCID
        post(b, [sim_event(1, 0, X, detail=VODAFONE)])
        stats = b.get(f"{PREFIX}/{X}/usage", params=params).json()["stats"]
        assert [entry["data"]["cost"] for entry in stats] == [None, None, None]


def test_day_costs_leave_out_a_cut_day_and_amounts_they_cannot_sum() -> None:
    def row(day: int, cost: Any) -> tuple[int, int, bytes]:
        return (day, 5, orjson.dumps({"cost": cost, "currency": {"code": "EUR"}}))

    rows = [row(9, "0.5"), row(9, "1"), row(8, "1e999999"), row(7, True), row(6, "2"), row(5, "3")]
    costs = day_costs(rows, limit=len(rows))  # the read was cut: day 5 may lack records
    assert costs == {(9, 5): ("1.5", {"code": "EUR"}), (6, 5): ("2", {"code": "EUR"})}
    assert day_costs(rows, limit=len(rows) + 1)[(5, 5)] == ("3", {"code": "EUR"})
