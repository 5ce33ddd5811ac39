"""Rules end to end: the app served in process on each backend evaluates them from the log, and
a webhook handler receives their alerts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from herald.timefmt import format_ms, now_ms
from tests.delivery.receiver import Receiver, receiving, start_delivery_in_process
from tests.support.inproc import InProcessHerald
from tests.support.waiting import wait_until

MARKER = 10_077  # a custom type only the marker rule counts
RULES_ENV = {
    "HERALD_RULES_POLL_SECONDS": "0.05",
    "HERALD_MAX_RULES_PER_ORGANISATION": "5",
    "HERALD_MAX_GROUPS_PER_RULE": "3",
}
PERMISSIONS = ("rule:manage", "event:create", "event:read", "handler:manage")
NDJSON = {"Accept": "application/x-ndjson"}


@pytest.fixture
def rules_server(database_url: str, tmp_path: Path) -> Iterator[InProcessHerald]:
    server = start_delivery_in_process(tmp_path / "herald", database_url, **RULES_ENV)
    try:
        yield server
    finally:
        server.stop()


def post(client: httpx.Client, *events: dict[str, Any]) -> None:
    answer = client.post("/event", json=list(events))
    assert answer.status_code == 201, answer.text


def event(type_id: int, endpoint: int, **fields: Any) -> dict[str, Any]:
    return {"event_type": {"id": type_id}, "endpoint": {"id": endpoint}, **fields}


def make_rule(client: httpx.Client, **body: Any) -> dict[str, Any]:
    answer = client.post("/rule", json=body)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def alerts_of(receiver: Receiver, rule: dict[str, Any]) -> list[str]:
    """The alert events the receiver got for ``rule``: fired, resolved, in order."""
    return [
        "fired" if r.json()["event_type"]["id"] == 2200 else "resolved"
        for r in receiver.delivered()
        if r.json()["detail"]["rule"]["id"] == rule["id"]
    ]


def has(receiver: Receiver, rule: dict[str, Any], kind: str) -> Callable[[], bool]:
    return lambda: kind in alerts_of(receiver, rule)


def test_each_kind_fires_is_delivered_resolves_and_is_held_down(
    rules_server: InProcessHerald,
) -> None:
    server = rules_server
    a, b = server.create_org("Acme IoT"), server.create_org("Bolt Mobility")
    with (
        receiving() as receiver,
        server.client(server.create_token(a, *PERMISSIONS)) as client,
        server.client(server.create_token(b, *PERMISSIONS)) as other,
    ):
        hook = {
            "name": "alerts",
            "type": "webhook",
            "url": receiver.url,
            "filter": "type:2200|2201",
        }
        assert client.post("/event_handler", json=hook).status_code == 201
        count = make_rule(
            client,
            name="attach failures",
            q="type:7",
            condition={"kind": "count", "count": 3, "window_seconds": 3},
            hold_down_seconds=600,
        )
        absence = make_rule(
            client,
            name="silent",
            q="endpoint:9",
            condition={"kind": "absence", "window_seconds": 1},
            hold_down_seconds=600,
        )
        offline = make_rule(
            client,
            name="offline",
            q="endpoint:8",
            condition={"kind": "state", "statuses": ["OFFLINE"], "window_seconds": 1},
        )
        threshold = make_rule(
            client, name="heavy", q="type:5", condition={"kind": "threshold", "megabytes": 1}
        )
        marker = make_rule(
            client,
            name="marker",
            q=f"type:{MARKER}",
            condition={"kind": "count", "count": 1, "window_seconds": 600},
        )
        refused = client.post(
            "/rule", json={"name": "sixth", "condition": {"kind": "absence", "window_seconds": 1}}
        )
        assert refused.status_code == 409, refused.text
        assert refused.json()["title"] == "Limit reached"

        post(client, *[event(7, 7) for _ in range(3)])  # endpoint 7: three attach failures
        post(client, event(1, 8), event(15, 8))  # endpoint 8: attached, then purged
        post(client, event(3, 9))  # endpoint 9: once, then silent
        volume = {"detail": {"volume": {"rx": 1, "tx": 1, "total": 2}}}
        post(client, event(5, 10, **volume))  # endpoint 10: 2 MB in one session
        post(other, *[event(7, 7) for _ in range(3)], event(3, 9))  # B: no rule of its own

        for rule in (count, absence, offline, threshold):
            receiver.wait_for(has(receiver, rule, "fired"))
        fired = [r.json() for r in receiver.delivered() if r.json()["event_type"]["id"] == 2200]
        assert {f["organisation"]["id"] for f in fired} == {a}
        by_rule = {f["detail"]["rule"]["id"]: f for f in fired}
        assert by_rule[count["id"]]["target"] == {"type": "endpoint", "id": "7"}
        assert by_rule[count["id"]]["detail"]["count"] == 3
        assert by_rule[offline["id"]]["detail"]["status"] == "OFFLINE"
        assert by_rule[threshold["id"]]["detail"]["megabytes"] == 2
        assert by_rule[absence["id"]]["endpoint"]["id"] == 9

        current = client.get("/rule/alert").json()
        assert {(x["rule"]["id"], x["group"]["key"]) for x in current} >= {
            (absence["id"], "9"),
            (offline["id"], "8"),
            (threshold["id"], "10"),
        }
        assert all(x["age_seconds"] >= 0 for x in current)
        assert other.get("/rule/alert").json() == []
        assert other.get(f"/rule/{count['id']}").status_code == 404

        post(client, event(3, 9), event(1, 8))  # endpoint 9 speaks, endpoint 8 attaches
        for rule in (count, absence, offline):  # the count by time: its window passed
            receiver.wait_for(has(receiver, rule, "resolved"))

        # held down: three more failures fire nothing for ten minutes; the deleted rule fires
        # no more; the changed one forgets endpoint 9 and watches endpoint 99 (a second on)
        client.delete(f"/rule/{offline['id']}").raise_for_status()
        changed = client.patch(f"/rule/{absence['id']}", json={"q": "endpoint:99"})
        assert changed.status_code == 200 and changed.json()["revision"] == 2
        post(client, *[event(7, 7) for _ in range(3)], event(15, 8), event(3, 9), event(3, 99))
        post(client, event(MARKER, 1))
        receiver.wait_for(has(receiver, marker, "fired"))
        receiver.wait_for(lambda: len(alerts_of(receiver, absence)) == 3)
        assert alerts_of(receiver, count) == ["fired", "resolved"]
        assert alerts_of(receiver, offline) == ["fired", "resolved"]
        keys = [
            r.json()["detail"]["group"]["key"]
            for r in receiver.delivered()
            if r.json()["detail"]["rule"]["id"] == absence["id"]
        ]
        assert keys == ["9", "9", "99"]
        listed = {r["id"]: r for r in client.get("/rule").json()}
        assert set(listed) == {count["id"], absence["id"], threshold["id"], marker["id"]}
        assert listed[threshold["id"]]["alerts"] == 1
        assert listed[threshold["id"]]["groups"] == 1
        assert listed[threshold["id"]]["group_limit_reached"] is False

        # a new name or hold-down keeps the rule's groups and alerts
        renamed = client.patch(
            f"/rule/{threshold['id']}", json={"name": "heavy users", "hold_down_seconds": 60}
        )
        assert renamed.status_code == 200, renamed.text
        assert renamed.json()["revision"] == 1
        assert client.get(f"/rule/{threshold['id']}").json()["alerts"] == 1

        # a change resolves the alert the rule has open, saying why
        bigger = {"condition": {"kind": "threshold", "megabytes": 500, "period": "day"}}
        client.patch(f"/rule/{threshold['id']}", json=bigger).raise_for_status()
        receiver.wait_for(has(receiver, threshold, "resolved"))
        (resolved,) = [
            r.json()
            for r in receiver.delivered()
            if r.json()["detail"]["rule"]["id"] == threshold["id"]
            and r.json()["event_type"]["id"] == 2201
        ]
        assert resolved["detail"]["reason"] == "the rule was changed"
        assert resolved["endpoint"]["id"] == 10
        assert client.get(f"/rule/{threshold['id']}").json()["alerts"] == 0


def test_rules_are_checked_and_permitted(rules_server: InProcessHerald) -> None:
    server = rules_server
    a = server.create_org("Acme IoT")
    reader = server.create_token(a, "rule:read")
    with (
        server.client(server.create_token(a, "rule:manage")) as client,
        server.client(reader) as read,
    ):
        good = {"name": "x", "condition": {"kind": "absence", "window_seconds": 60}}
        for body, field in (
            ({**good, "q": "type:"}, "q"),
            ({**good, "q": "nonsense:1"}, "q"),
            ({**good, "group": "planet"}, "group"),
            ({**good, "condition": {"kind": "count", "window_seconds": 60}}, "condition.count"),
            (
                {**good, "condition": {"kind": "absence", "count": 3, "window_seconds": 1}},
                "condition.count",
            ),
            (
                {**good, "condition": {"kind": "state", "statuses": ["OFFLINE"]}, "group": "sim"},
                "group",
            ),
            ({**good, "condition": {"kind": "threshold"}}, "condition.megabytes"),
            ({"condition": good["condition"]}, "name"),
        ):
            refused = client.post("/rule", json=body)
            assert refused.status_code == 422, (body, refused.text)
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["errors"][0]["field"].startswith(field), refused.text
        created = client.post("/rule", json=good).json()
        assert read.get(f"/rule/{created['id']}").json()["condition"] == {
            "kind": "absence",
            "window_seconds": 60,
        }
        assert read.post("/rule", json=good).status_code == 403
        assert read.delete(f"/rule/{created['id']}").status_code == 403
        assert client.delete(f"/rule/{created['id']}").status_code == 204
        assert client.delete(f"/rule/{created['id']}").status_code == 404
        assert client.patch("/rule/alert", json={}).status_code == 405  # not a rule's id
        assert client.get("/rule/x").status_code == 404


def test_a_preview_tells_how_often_a_rule_would_have_fired(rules_server: InProcessHerald) -> None:
    server = rules_server
    a, b = server.create_org("Acme IoT"), server.create_org("Bolt Mobility")
    start = now_ms() - 2 * 3600_000
    past = [
        event(7, endpoint, timestamp=format_ms(start + minute * 60_000))
        for endpoint, minutes in ((7, range(5)), (8, (0, 30)), (9, range(0, 50, 2)))
        for minute in minutes
    ]
    reader = server.create_token(b, "rule:read")
    with (
        server.client(server.create_token(a, "rule:read", "event:create")) as client,
        server.client(reader) as other,
    ):
        post(client, *past)
        body = {
            "q": "type:7",
            "condition": {"kind": "count", "count": 5, "window_seconds": 600},
            "hold_down_seconds": 3600,
            "from": format_ms(start - 60_000),
        }
        answer = client.post("/rule/preview", json=body)
        assert answer.status_code == 200, answer.text
        found = answer.json()
        assert found["events"] == len(past)
        assert found["complete"] is True
        # endpoint 9's events never stop: it fires once, its hold-down outlasting them
        assert found["groups"] == [{"key": "7", "fired": 1}, {"key": "9", "fired": 1}]
        assert found["fired"] == 2
        assert other.post("/rule/preview", json=body).json()["fired"] == 0
        too_long = client.post("/rule/preview", json={**body, "from": "2020-01-01T00:00:00Z"})
        assert too_long.status_code == 422
        assert too_long.json()["errors"][0]["field"] == "from"

        # asked for NDJSON: its progress through the range, then the same answer
        with client.stream("POST", "/rule/preview", json=body, headers=NDJSON) as streamed:
            assert streamed.status_code == 200
            assert streamed.headers["content-type"].startswith("application/x-ndjson")
            lines = [orjson.loads(line) for line in streamed.iter_lines() if line]
        *steps, last = lines
        assert last == {"result": {**found, "until": last["result"]["until"]}}
        progress = [step["progress"] for step in steps]
        assert progress[0] == {"read": 0, "through": body["from"], "fraction": 0}
        assert progress[-1]["read"] == len(past)
        fractions = [step["fraction"] for step in progress]
        assert fractions == sorted(fractions) and 0 < fractions[-1] < 1
        refused = client.post(
            "/rule/preview", json={**body, "from": "2020-01-01T00:00:00Z"}, headers=NDJSON
        )
        assert refused.status_code == 422  # refused before it starts: problem+json
        assert refused.headers["content-type"] == "application/problem+json"


def _usage_record(record_id: int, endpoint: int, total: str) -> dict[str, Any]:
    """A 1NCE data usage record of ``total`` MB that ended a second ago."""
    end = now_ms() - 1000
    return {
        "id": record_id,
        "traffic_type": {"id": 5, "description": "Data"},
        "start_timestamp": format_ms(end - 60_000),
        "end_timestamp": format_ms(end),
        "endpoint": {"id": endpoint},
        "volume": {"total": total, "rx": total, "tx": "0"},
    }


def test_a_threshold_counts_the_usage_the_usage_route_shows(rules_server: InProcessHerald) -> None:
    server = rules_server
    a = server.create_org("Acme IoT")
    token = server.create_token(a, "rule:manage", "event:create", "event:read", "ingest:1nce")
    with server.client(token) as client:
        rule = make_rule(
            client, name="heavy", condition={"kind": "threshold", "megabytes": 1, "period": "day"}
        )
        # endpoint 41: usage records of 1.5 MB today, and a session of 0.25 MB they include;
        # endpoint 42: sessions only, 1.25 MB; endpoint 43: 0.5 MB, below the threshold
        records = [_usage_record(9100 + i, 41, "0.750000") for i in range(2)]
        assert client.post("/ingest/1nce", json=records).json()["stored"] == 2
        session = {"detail": {"volume": {"rx": 0.25, "tx": 0, "total": 0.25}}}
        heavy = {"detail": {"volume": {"rx": 1, "tx": 0.25, "total": 1.25}}}
        light = {"detail": {"volume": {"rx": 0.5, "tx": 0, "total": 0.5}}}
        post(client, event(5, 41, **session), event(5, 42, **heavy), event(5, 43, **light))

        def fired() -> dict[str, float]:
            found = client.get("/event", params={"q": "type:2200", "per_page": 100}).json()
            return {
                f["detail"]["group"]["key"]: f["detail"]["megabytes"]
                for f in found
                if f["detail"]["rule"]["id"] == rule["id"]
            }

        wait_until(lambda: len(fired()) == 2, 30, lambda: str(fired()))
        by_rule = fired()
        for endpoint in ("41", "42"):
            daily = client.get(f"/endpoint/{endpoint}/stats/daily").json()
            today = [day for day in daily if day["date"] == format_ms(now_ms())[:10]]
            assert by_rule[endpoint] == today[0]["data"]["volume"], (endpoint, daily)
        assert by_rule == {"41": 1.5, "42": 1.25}


def test_the_groups_a_rule_refuses_at_its_limit_are_shown(rules_server: InProcessHerald) -> None:
    server = rules_server
    a = server.create_org("Acme IoT")
    with server.client(server.create_token(a, "rule:manage", "event:create")) as client:
        rule = make_rule(
            client,
            name="any attach failure",
            q="type:7",
            condition={"kind": "count", "count": 1, "window_seconds": 600},
        )
        assert (rule["groups_refused"], rule["refused_since"]) == (0, None)
        post(client, *[event(7, endpoint) for endpoint in range(1, 6)])  # five endpoints

        def shown() -> dict[str, Any]:
            found: dict[str, Any] = client.get(f"/rule/{rule['id']}").json()
            return found

        wait_until(lambda: shown()["groups_refused"] == 2, 30, lambda: str(shown()))
        post(client, *[event(7, endpoint) for endpoint in range(4, 7)])  # 4, 5 again; 6
        wait_until(lambda: shown()["groups_refused"] == 3, 30, lambda: str(shown()))
        state = shown()
        assert (state["groups"], state["group_limit_reached"], state["alerts"]) == (3, True, 3)
        assert state["refused_since"] is not None
        (listed,) = client.get("/rule").json()
        assert listed["groups_refused"] == 3
        renamed = client.patch(f"/rule/{rule['id']}", json={"name": "attach failures"}).json()
        assert (renamed["groups"], renamed["groups_refused"]) == (3, 3)  # the rule goes on
        changed = client.patch(f"/rule/{rule['id']}", json={"q": "type:8"}).json()
        assert (changed["groups"], changed["groups_refused"], changed["refused_since"]) == (
            0,
            0,
            None,
        )
