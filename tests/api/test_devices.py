"""Device state end to end: the app (in process) projects what is posted, on each backend."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from herald.timefmt import format_ms, now_ms, parse_timestamp, to_ms
from tests.ingest.examples import emnify_examples, recently
from tests.support.herald import HERALD, Herald
from tests.support.inproc import start_in_process
from tests.support.server import free_port
from tests.support.waiting import wait_until

MIN = 60_000
T0 = now_ms() - 24 * 60 * MIN  # a day ago: every event is in the past
VODAFONE = {
    "id": 3,
    "name": "Vodafone",
    "country": {"id": 74, "name": "Germany", "mcc": "262", "iso_code": "de"},
    "mnc": [{"id": 3, "mnc": "02"}],
}
ORANGE = {"id": 9, "name": "Orange", "country": {"id": 67, "name": "France", "mcc": "208"}}
MARKER = 999_999  # an endpoint whose event, posted last, shows the projection has caught up


@dataclass
class Tenants:
    a: int
    b: int
    a_rw: str
    b_rw: str
    admin: str


@pytest.fixture
def tenants(herald: Herald) -> Tenants:
    a, b = herald.create_org("Acme IoT"), herald.create_org("Bolt Mobility")
    return Tenants(
        a=a,
        b=b,
        a_rw=herald.create_token(a, "event:read", "event:create"),
        b_rw=herald.create_token(b, "event:read", "event:create"),
        admin=herald.admin_token,
    )


def event(type_id: int, minute: int, endpoint: int | str = 7, **fields: Any) -> dict[str, Any]:
    ref = (
        {"id": endpoint, "name": f"tracker-{endpoint}"}
        if isinstance(endpoint, int)
        else {"name": endpoint}
    )
    return {
        "event_type": {"id": type_id},
        "timestamp": format_ms(T0 + minute * MIN),
        "endpoint": {**ref, "ip_address": "10.0.0.7"},
        **fields,
    }


def session(minute: int, endpoint: int = 7, apn: str = "em") -> dict[str, Any]:
    pdp = {"apn": apn, "rat_type": 6, "ue_ip_address": "100.64.0.7"}
    return event(3, minute, endpoint, detail={**VODAFONE, "pdp_context": pdp})


def settle(client: httpx.Client, events: list[dict[str, Any]]) -> None:
    """Post ``events`` and a marker event after them; wait until the marker is projected
    (the projector follows the log in order: everything before it is then projected too)."""
    marker = {**event(10001, 0, MARKER), "timestamp": format_ms(now_ms() - 1000)}
    response = client.post("/event", json=[*events, marker])
    assert response.status_code == 201, response.text
    stamp = response.json()[-1]["timestamp"]

    def caught_up() -> bool:
        found = client.get("/endpoint", params={"sort": "-last_seen", "per_page": 1}).json()
        return bool(found) and found[0]["id"] == MARKER and found[0]["last_seen"] == stamp

    wait_until(caught_up, 20)


def connectivity(client: httpx.Client, endpoint: int | str = 7) -> dict[str, Any]:
    response = client.get(f"/endpoint/{endpoint}/connectivity")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"status", "location", "pdp_context", "services"}  # emnify's shape
    assert set(body["status"]) == {"id", "description"}
    # what the answer includes, in headers: the log position and the time it is as of
    assert int(response.headers["Herald-State-Position"]) > 0
    assert to_ms(parse_timestamp(response.headers["Herald-State-As-Of"])) <= now_ms()
    return body


def test_a_devices_story_and_backfill(herald: Herald, tenants: Tenants) -> None:
    steps: list[tuple[list[dict[str, Any]], str]] = [
        ([event(1, 0, detail=VODAFONE, description="now attached to VLR='4917200'.")], "ATTACHED"),
        ([session(1)], "ONLINE"),
        ([event(2, 2, detail=ORANGE)], "ONLINE"),  # a location update keeps the session
        ([event(5, 3)], "ATTACHED"),
        ([session(4, apn="iot")], "ONLINE"),
        ([event(15, 5)], "OFFLINE"),
        ([event(2, 6, detail=VODAFONE)], "ATTACHED"),
        ([event(11, 7, description="Endpoint blocked")], "BLOCKED"),
        ([event(42, 8)], "ATTACHED"),
    ]
    with herald.client(tenants.a_rw) as client:
        assert client.get("/endpoint/7/connectivity").status_code == 404
        for events, status in steps:
            settle(client, events)
            assert connectivity(client)["status"]["description"] == status, events
        # backfilled (older) events, out of order, do not move the state back
        settle(client, [event(3, -5), session(-30), event(5, -40), event(15, -2), event(11, -1)])
        answer = connectivity(client)
        assert answer["status"] == {"id": 0, "description": "ATTACHED"}
        assert answer["location"]["operator"]["name"] == "Vodafone"
        assert answer["location"]["country"]["name"] == "Germany"
        assert answer["location"]["last_updated"] == format_ms(T0 + 6 * MIN)
        assert answer["location"]["vlr"] == "4917200"
        assert answer["pdp_context"] is None
        assert answer["services"] == ["GPRS"]  # CS purged at 5, only PS attached since
        settle(client, [session(9, apn="iot")])
        pdp = connectivity(client)["pdp_context"]
        assert (pdp["apn"], pdp["rat_type"], pdp["ue_ip_address"]) == ("iot", 6, "100.64.0.7")
        # a Stacuity endpoint (an endpointId that is no number) is found by its name
        settle(client, [event(2, 10, "8d1c-uuid", detail=ORANGE)])
        assert connectivity(client, "8d1c-uuid")["status"]["description"] == "ATTACHED"


def test_tenants_see_only_their_endpoints(herald: Herald, tenants: Tenants) -> None:
    with herald.client(tenants.a_rw) as a, herald.client(tenants.b_rw) as b:
        settle(a, [event(1, 0, 7, detail=VODAFONE), session(1, 8)])
        settle(b, [event(15, 2, 7)])
        assert connectivity(a, 7)["status"]["description"] == "ATTACHED"
        assert connectivity(b, 7)["status"]["description"] == "OFFLINE"
        missing = b.get("/endpoint/8/connectivity")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert {e["id"] for e in b.get("/endpoint").json()} == {7, MARKER}
        assert all(e["organisation"]["id"] == tenants.b for e in b.get("/endpoint").json())
        counts = {
            c["status"]["description"]: c["count"]
            for c in b.get("/endpoint/status_counts").json()["counts"]
        }
        assert counts == {"ATTACHED": 0, "ONLINE": 0, "OFFLINE": 2, "BLOCKED": 0}
    with herald.client(tenants.admin) as admin:
        assert admin.get("/endpoint/status_counts").json()["total"] == 5
        assert int(admin.get("/endpoint").headers["X-Total-Count"]) == 5


def test_the_platform_narrows_to_one_organisation(herald: Herald, tenants: Tenants) -> None:
    """The console's organisation switcher: GET /organisation lists what a token may read,
    and ``organisation`` narrows the fleet list and the status counts to one of them."""
    with herald.client(tenants.a_rw) as a, herald.client(tenants.b_rw) as b:
        settle(a, [event(1, 0, 7, detail=VODAFONE), session(1, 8)])
        settle(b, [event(15, 2, 7)])
        assert a.get("/organisation").json() == [{"id": tenants.a, "name": "Acme IoT"}]
        own = a.get("/endpoint/status_counts", params={"organisation": tenants.a}).json()
        assert own == a.get("/endpoint/status_counts").json()
        other = a.get("/endpoint", params={"organisation": tenants.b})
        assert other.status_code == 403
        assert other.headers["content-type"] == "application/problem+json"
        assert (
            a.get("/endpoint/status_counts", params={"organisation": tenants.b}).status_code == 403
        )
    with herald.client(tenants.admin) as admin:
        listed = admin.get("/organisation").json()
        assert {"id": tenants.a, "name": "Acme IoT"} in listed
        assert {"id": tenants.b, "name": "Bolt Mobility"} in listed
        only_b = admin.get("/endpoint", params={"organisation": tenants.b, "sort": "id"})
        assert [e["id"] for e in only_b.json()] == [7, MARKER]
        assert "organisation=" in only_b.headers["Link"]  # its pages keep the organisation
        counts = admin.get("/endpoint/status_counts", params={"organisation": tenants.a}).json()
        assert counts["total"] == 3  # 7, 8 and the marker
        bad = admin.get("/endpoint", params={"organisation": "acme"})
        assert bad.status_code == 422 and "organisation" in bad.text
        assert admin.get("/endpoint/status_counts", params={"organisation": 0}).status_code == 422


def test_the_fleet_list_filters_sorts_and_pages(herald: Herald, tenants: Tenants) -> None:
    with herald.client(tenants.a_rw) as client:
        settle(
            client,
            [
                event(1, 0, 1, detail=VODAFONE),  # attached, Germany
                event(1, 1, 2, detail=ORANGE),  # attached, France
                session(2, 3),  # online, Germany
                event(2, 3, 4, detail=ORANGE),
                event(19, 4, 4),  # blocked, France
                event(10001, 5, 5),  # never attached: offline, no network
            ],
        )

        def ids(**params: Any) -> list[int]:
            response = client.get("/endpoint", params=params)
            assert response.status_code == 200, response.text
            return [e["id"] for e in response.json() if e["id"] != MARKER]

        assert ids() == [5, 4, 3, 2, 1]
        assert ids(status="ATTACHED") == [2, 1]
        assert ids(status="online|3") == [4, 3]
        assert ids(country="France") == [4, 2]
        assert ids(operator="Vodafone", sort="id") == [1, 3]
        assert ids(last_seen_before=format_ms(T0 + 2 * MIN)) == [2, 1]
        assert ids(last_seen_after=format_ms(T0 + 2 * MIN), status="0|1|2|3") == [5, 4, 3]
        assert ids(sort="status,-id") == [2, 1, 3, 5, 4]
        # q: the same filters as one text, as the event list takes them
        assert ids(q="status:ATTACHED") == [2, 1]
        assert ids(q="status:online|3,country:France") == [4]
        assert ids(q="operator:Vodafone", status="0") == [1]
        assert ids(q="endpoint:1|tracker-3") == [3, 1]
        assert ids(name="TRACKER-2|cker-5") == [5, 2]  # substrings, any ASCII case
        assert ids(q="name:%") == []  # wildcards are literal
        # devices that went quiet: no event for a given time (all were a day ago)
        assert ids(q="quiet:1h") == [5, 4, 3, 2, 1]
        assert ids(quiet="1h", status="BLOCKED") == [4]
        assert ids(q="quiet:2d") == []
        assert ids(quiet="23h", last_seen_before=format_ms(T0 + 2 * MIN)) == [2, 1]
        echoed = client.get("/endpoint", params={"status": "1", "q": "quiet:1h"})
        assert echoed.headers["X-Filter"] == "status:1,quiet:1h"
        page = client.get("/endpoint", params={"status": "0|1|3", "per_page": 2, "page": 2})
        assert [e["id"] for e in page.json()] == [2, 1]
        assert page.headers["X-Total-Count"] == "4"
        assert page.headers["X-Total-Pages"] == "2"
        links = {part.split('rel="')[1].rstrip('"') for part in page.headers["Link"].split(", ")}
        assert links == {"first", "prev", "last"}
        item = client.get("/endpoint", params={"status": "BLOCKED"}).json()[0]
        assert item["status"] == {"id": 3, "description": "BLOCKED"}
        assert item["name"] == "tracker-4" and item["location"]["operator"]["name"] == "Orange"
        assert item["last_seen"] == format_ms(T0 + 4 * MIN)
        assert (item["quota_status"], item["sim_status"]) == ("EXHAUSTED", None)


BAD_PARAMETERS = [
    ({"status": "SLEEPING"}, "status"),
    ({"status": "7"}, "status"),
    ({"last_seen_after": "soon"}, "last_seen_after"),
    ({"last_seen_before": "2026-13-01T00:00:00Z"}, "last_seen_before"),
    (
        {"last_seen_after": "2026-11-02T00:00:00Z", "last_seen_before": "2026-11-01T00:00:00Z"},
        "last_seen_after",
    ),
    ({"per_page": "0"}, "per_page"),
    ({"per_page": "1001"}, "per_page"),
    ({"page": "x"}, "page"),
    ({"sort": "imsi"}, "sort"),
    ({"country": "x" * 300}, "country"),
    ({"operator": "|".join(["x"] * 60)}, "operator"),
    ({"colour": "red"}, "colour"),
    ({"q": "status:SLEEPING"}, "q.status"),
    ({"q": "colour:red"}, "q.colour"),
    ({"q": "status:1", "status": "1"}, "q.status"),
    ({"q": "status:1,status:2"}, "q.status"),
    ({"q": "online"}, "q"),
    ({"q": "x" * 5000}, "q"),
    ({"q": "last_seen_after:yesterday"}, "q.last_seen_after"),
    ({"quiet": "6 hours"}, "quiet"),
    ({"q": "quiet:0m"}, "q.quiet"),
    ({"quiet": "9999d"}, "quiet"),
    ({"name": "|".join("abcdefghijklmnopqrstuvwxyz")}, "name"),
    ({"endpoint": ""}, "endpoint"),
]


def test_bad_parameters_are_422_naming_the_field(herald: Herald, tenants: Tenants) -> None:
    with herald.client(tenants.a_rw) as client:
        for params, field in BAD_PARAMETERS:
            response = client.get("/endpoint", params=params)
            assert response.status_code == 422, (params, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert [e["field"] for e in response.json()["errors"]] == [field], params
        assert client.get("/endpoint/" + "x" * 300 + "/connectivity").status_code == 400
        for params, field in (({"name": "a\x00b"}, "name"), ({"q": "country:x\x00"}, "q")):
            refused = client.get("/endpoint", params=params)  # the API's NUL guard
            assert refused.status_code == 400, refused.text
            assert [e["field"] for e in refused.json()["errors"]] == [field]
    with herald.client() as anonymous:
        assert anonymous.get("/endpoint").status_code == 401


def test_provider_records_drive_the_state(herald: Herald, tenants: Tenants) -> None:
    """emnify's own example records (the reference), through /ingest/emnify, for one device."""
    examples = emnify_examples()

    def example(type_id: int, accepted: bool = True) -> dict[str, Any]:
        return next(
            record
            for record in examples
            if int(record["event_type"]["id"]) == type_id
            and ("rejected" not in record["description"]) == accepted
        )

    story = [example(1), example(3), example(3, accepted=False)]
    story = [{**record, "endpoint": {**record["endpoint"], "id": 4242}} for record in story]
    token = herald.create_token(tenants.a, "ingest:emnify", "event:read")
    with herald.client(token) as client:
        records = recently(story)
        response = client.post("/ingest/emnify", json=records)
        assert response.status_code == 200 and response.json()["stored"] == 3, response.text
        last = format_ms(to_ms(parse_timestamp(records[-1]["timestamp"])))

        def projected() -> bool:  # up to the last record, the rejection
            found = client.get("/endpoint", params={"status": "ONLINE"}).json()
            return [(e["id"], e["last_seen"]) for e in found] == [(4242, last)]

        wait_until(projected)
        answer = connectivity(client, 4242)
    assert answer["status"] == {"id": 1, "description": "ONLINE"}  # the rejection changed nothing
    assert answer["location"]["operator"]["name"] == "Vodafone"
    assert answer["location"]["country"]["name"] == "Germany"
    assert answer["location"]["vlr"] == "491720000095"
    pdp = answer["pdp_context"]
    assert (pdp["apn"], pdp["ue_ip_address"]) == ("em", "101.124.109.214")
    assert answer["services"] == ["GPRS", "SMS"]


def test_status_changes_as_events_for_an_organisation_that_opts_in(
    herald: Herald, tenants: Tenants
) -> None:
    manage = herald.create_token(tenants.a, "event:read", "event:create", "handler:manage")
    path = f"/organisation/{tenants.a}/device_events"
    with herald.client(manage) as client, herald.client(tenants.b_rw) as other:
        assert client.get(path).json() == {
            "organisation_id": tenants.a,
            "enabled": False,
            "types": [2100, 2101, 2102, 2103],
        }
        assert other.get(path).status_code == 404  # another organisation's setting
        own = f"/organisation/{tenants.b}/device_events"
        assert other.put(own, json={"enabled": True}).status_code == 403  # no handler:manage
        assert client.put(own, json={"enabled": True}).status_code == 404
        for body, field in (
            ({"enabled": "yes"}, "enabled"),
            ({}, "enabled"),
            ({"enabled": True, "x": 1}, "x"),
        ):
            refused = client.put(path, json=body)
            assert refused.status_code == 422, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert [e["field"] for e in refused.json()["errors"]] == [field], refused.text
        settle(client, [event(1, 0, 6, detail=VODAFONE)])  # before the opt-in: no event
        answer = client.put(path, json={"enabled": True})
        assert answer.status_code == 200 and answer.json()["enabled"] is True
        settle(client, [event(1, 1, detail=VODAFONE), session(2), event(15, 3)])
        settle(client, [event(1, -10, detail=VODAFONE), event(5, -5)])  # backfill: no change
        settle(other, [event(1, 1, detail=VODAFONE)])  # not opted in

        def changes() -> list[tuple[int, str]]:
            found = client.get("/event", params={"q": "type:2100|2101|2102|2103"}).json()
            return sorted((e["endpoint"]["id"], e["event_type"]["description"]) for e in found)

        # written with the states, so there once the marker is projected; endpoint 6
        # changed before the opt-in, the marker endpoint (a custom event) stays offline
        assert changes() == [
            (7, "Endpoint attached"),
            (7, "Endpoint offline"),
            (7, "Endpoint online"),
        ]
        offline = client.get("/event", params={"q": "type:2102"}).json()
        assert [e["detail"]["previous_status"]["description"] for e in offline] == ["ONLINE"]
        assert offline[0]["organisation"]["id"] == tenants.a
        assert other.get("/event", params={"q": "type:2100|2101|2102|2103"}).json() == []


def test_a_worker_keeps_the_states_when_serve_does_not(database_url: str, tmp_path: Path) -> None:
    """``serve`` with the projector off and ``herald worker`` beside it: the worker folds the
    log, and writes the status changes of an organisation that opted in."""
    off = {"HERALD_DEVICE_STATE_ENABLED": "false", "HERALD_DELIVERY_ENABLED": "false"}
    herald = start_in_process(tmp_path / "serve", env=off, database_url=database_url)
    worker: subprocess.Popen[bytes] | None = None
    try:
        org = herald.create_org("Acme IoT")
        token = herald.create_token(org, "event:read", "event:create", "handler:manage")
        with herald.client(token) as client:
            assert "device_state" not in httpx.get(f"{herald.url}/ready").json()["loops"]
            enabled = client.put(f"/organisation/{org}/device_events", json={"enabled": True})
            assert enabled.status_code == 200, enabled.text
            posted = client.post("/event", json=[event(1, 0, detail=VODAFONE), session(1)])
            assert posted.status_code == 201, posted.text
            env = {
                **herald.env,
                "HERALD_DEVICE_STATE_ENABLED": "true",
                "HERALD_DEVICE_STATE_POLL_SECONDS": "0.05",
            }
            port = str(free_port())
            with (tmp_path / "worker.log").open("ab") as log:
                worker = subprocess.Popen(
                    [*HERALD, "worker", "--database", database_url, "--port", port],
                    cwd=tmp_path,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )

            def changes() -> list[int]:
                found = client.get("/event", params={"q": "type:2100|2101|2102|2103"}).json()
                return sorted(e["event_type"]["id"] for e in found)

            wait_until(lambda: changes() == [2100, 2101], 30)
            # a new owner knows a time its states are as of once a read after it took over
            # has seen every older write transaction end: a step or two
            wait_until(
                lambda: "Herald-State-As-Of" in client.get("/endpoint/7/connectivity").headers
            )
            assert connectivity(client)["status"]["description"] == "ONLINE"
            assert client.post("/event", json=event(15, 2)).status_code == 201
            wait_until(lambda: changes() == [2100, 2101, 2102], 30)
            assert connectivity(client)["status"]["description"] == "OFFLINE"
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(20)
        herald.stop()
