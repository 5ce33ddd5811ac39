"""One filter, four paths: the list, the stats, the live stream and a handler select the same
events (the tags case of the field-table issue), over the app (in process) on each backend."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.delivery.receiver import receiving, start_delivery_in_process, tenant
from tests.support.herald import Herald
from tests.support.waiting import wait_until

TAGS = ["fleet_a,eu", "Fleet_A", "fleetXa", None]  # the 3rd: "_" must not be a wildcard


@pytest.fixture
def herald(tmp_path: Path, database_url: str) -> Iterator[Herald]:
    server = start_delivery_in_process(tmp_path / "herald", database_url)
    try:
        yield server
    finally:
        server.stop()


class LiveRecords:
    """The records an open ``/event/stream`` sends, read on a thread."""

    def __init__(self, server: Herald, token: str, params: dict[str, str]) -> None:
        self.records: list[dict[str, Any]] = []
        self.open = threading.Event()
        self.status = 0
        self._client = httpx.Client(timeout=httpx.Timeout(10, read=60))
        request = self._client.build_request(
            "GET",
            f"{server.url}/api/v1/event/stream",
            params=params,
            headers={"Authorization": f"Bearer {token}"},
        )
        self._thread = threading.Thread(target=self._read, args=(request,), daemon=True)
        self._thread.start()
        assert self.open.wait(20) and self.status == 200, self.status

    def _read(self, request: httpx.Request) -> None:
        try:
            response = self._client.send(request, stream=True)
            try:
                self.status = response.status_code
                self.open.set()
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        self.records.append(orjson.loads(line[6:]))
            finally:
                response.close()
        except httpx.HTTPError:
            pass
        finally:
            self.open.set()

    def close(self) -> None:
        self._client.close()


def test_tags_select_the_same_events_on_every_path(herald: Herald) -> None:
    _, token = tenant(herald)
    with receiving() as receiver, herald.client(token) as client:
        handlers = [
            client.post(
                "/event_handler", json={"name": "q form", "url": receiver.url, "filter": form}
            )
            for form in ("tags:fleet_a", {"tags": ["fleet_a"]})  # the q form and the old shape
        ]
        assert [h.status_code for h in handlers] == [201, 201], handlers[0].text
        assert [h.json()["filter"] for h in handlers] == ["tags:fleet_a", "tags:fleet_a"]
        live = LiveRecords(herald, token, {"tags": "fleet_a"})
        try:
            events = [
                {"event_type": {"id": 10001}, **({"endpoint": {"id": i, "tags": t}} if t else {})}
                for i, t in enumerate(TAGS)
            ]
            posted = client.post("/event", json=events)
            assert posted.status_code == 201, posted.text
            wanted = sorted(e["id"] for e in posted.json()[:2])

            listed = client.get("/event", params={"tags": "fleet_a"}).json()
            assert sorted(e["id"] for e in listed) == wanted
            in_q = client.get("/event", params={"q": "tags:FLEET_A"}).json()
            assert sorted(e["id"] for e in in_q) == wanted
            stats = client.get("/event/stats", params={"tags": "fleet_a"}).json()
            assert stats["total"] == 2

            # On PostgreSQL the log is read up to the cluster's safe watermark, which a write
            # transaction of another test's database (same cluster) can hold back for a while.
            wait_until(lambda: len(live.records) >= 2, 60, lambda: f"live: {live.records}")
            receiver.wait_for(lambda: len(receiver.delivered_ids()) >= 4, 60)
        finally:
            live.close()
        assert sorted(r["id"] for r in live.records) == wanted
        assert sorted(receiver.delivered_ids()) == sorted(wanted * 2)


def test_bad_handler_filters_name_the_field(herald: Herald) -> None:
    _, token = tenant(herald)
    with herald.client(token) as client:
        for form, field in (
            ("severity:loud", "filter.severity"),
            ("organisation:2", "filter.organisation"),
            ("from:2026-01-01", "filter.from"),
            ({"severities": [7]}, "filter.severities"),  # the old shape keeps its names
        ):
            answer = client.post(
                "/event_handler",
                json={"name": "bad", "url": "http://127.0.0.1:9/x", "filter": form},
            )
            assert answer.status_code == 422, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["errors"][0]["field"] == field


def test_unknown_parameters_and_values_answer_422(herald: Herald) -> None:
    _, token = tenant(herald)
    with herald.client(token) as client:
        for params, field in (
            ({"serverity": "2"}, "serverity"),
            ({"criticality": "9"}, "criticality"),
            ({"q": "severity:loud"}, "q.severity"),
        ):
            for path in ("/event", "/event/stats"):
                answer = client.get(path, params=params)
                assert answer.status_code == 422, (path, answer.text)
                assert answer.json()["errors"][0]["field"] == field


def test_one_date_alone_ranges_to_now(herald: Herald) -> None:
    """The platform event API: "if only one date is specified, range is automatically
    between the date and NOW", for ``from`` and for ``until`` alike."""
    _, token = tenant(herald)
    now = time.time()
    stamps = [now - 3 * 3600, now - 2 * 3600, now - 3600]
    with herald.client(token) as client:
        posted = client.post(
            "/event",
            json=[
                {"event_type": {"id": 10001}, "timestamp": _iso(stamp), "description": f"e{i}"}
                for i, stamp in enumerate(stamps)
            ],
        )
        assert posted.status_code == 201, posted.text
        ids = [event["id"] for event in posted.json()]
        since = _iso(now - 2.5 * 3600)
        for name in ("from", "until"):
            listed = client.get("/event", params={name: since, "type": "10001"}).json()
            assert sorted(event["id"] for event in listed) == sorted(ids[1:]), name


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


OFFERED = re.compile(r"\((?:known|fields): ([^)]*)\)|must be one of (.*)$")
"""The names an error message offers: ``(known: a, b)``, ``(fields: a, b)``, ``one of a, b``."""


def _samples(organisation: int, cursor: str) -> dict[str, str]:
    """A value each offered name takes (a new field must be given one here)."""
    now = time.time()
    return {
        "alert": "true",
        "code": "1",
        "country": "Germany",
        "criticality": "1",
        "description": "x",
        "endpoint": "1",
        "endpoint_name": "x",
        "external_id": "x",
        "from": _iso(now - 3600),
        "iccid": "8988300000000000012",
        "iccid_with_luhn": "89883000000000000123",
        "imei": "1",
        "imsi": "1",
        "ip_address": "10.0.0.1",
        "moniker": "endpointdatasessioncreated_v1",
        "msisdn": "1",
        "network": "x",
        "operator": "x",
        "organisation": str(organisation),
        "provider": "emnify",
        "provider_organisation": "1",
        "provider_type": "x",
        "rat": "4G",
        "severity": "warn",
        "sim": "1",
        "source": "1",
        "tags": "a",
        "target_id": "1",
        "target_type": "device",
        "timestamp": _iso(now),
        "type": "1",
        "until": _iso(now),
        "user": "1",
        "username": "x",
        # not filters: the other parameters and the sort and group names
        "q": "type:1",
        "sort": "id",
        "page": "1",
        "per_page": "1",
        "cursor": cursor,
        "bucket": "hour",
        "group": "type",
        "order": "count",
        "limit": "1",
        "id": "",
        "received": "",
    }


def _offered(answer: httpx.Response, status: int) -> list[str]:
    assert answer.status_code == status, answer.text
    match = OFFERED.search(answer.json()["errors"][0]["reason"])
    assert match, answer.text
    names = [name.strip() for name in (match.group(1) or match.group(2)).split(",")]
    assert len(names) > 3, names
    return names


def test_every_field_an_error_offers_is_taken_where_it_is_offered(herald: Herald) -> None:
    """Regression: ``timestamp`` was offered as a filter field and answered 500 in ``q``, as
    a parameter and in a handler filter. Each place that names its fields in an error must
    take every one of them (a list answers 200, a handler is created, a stream opens)."""
    organisation, token = tenant(herald)
    with herald.client(token) as client:
        posted = client.post("/event", json=[{"event_type": {"id": 10001}}] * 2)
        assert posted.status_code == 201, posted.text
        cursor = client.get("/event", params={"per_page": "1"}).headers["X-Next-Cursor"]
        samples = _samples(organisation, cursor)
        checked = 0
        for path in ("/event", "/event/stats"):
            for name in _offered(client.get(path, params={"q": "colour:red"}), 422):
                answer = client.get(path, params={"q": f"{name}:{samples[name]}"})
                assert answer.status_code == 200, (path, name, answer.text)
                checked += 1
            for name in _offered(client.get(path, params={"colour": "red"}), 422):
                answer = client.get(path, params={name: samples[name]})
                assert answer.status_code == 200, (path, name, answer.text)
                checked += 1
        for name in _offered(client.get("/event", params={"sort": "colour"}), 400):
            answer = client.get("/event", params={"sort": f"-{name}"})
            assert answer.status_code == 200, (name, answer.text)
        for name in _offered(client.get("/event/stats", params={"group": "colour"}), 400):
            answer = client.get("/event/stats", params={"group": name})
            assert answer.status_code == 200, (name, answer.text)
        stream = client.get("/event/stream", params={"q": "colour:red"})
        for name in _offered(stream, 422):
            reader = herald.create_token(organisation, "event:read")  # streams per token: 10
            params = {"q": f"{name}:{samples[name]}"}
            with (
                herald.client(reader) as streaming,
                streaming.stream("GET", "/event/stream", params=params) as answer,
            ):
                assert answer.status_code == 200, (name, answer.read())
            checked += 1
        handler = {"name": "offered", "url": "http://127.0.0.1:9/x"}
        refused = client.post("/event_handler", json={**handler, "filter": "colour:red"})
        for name in _offered(refused, 422):
            answer = client.post(
                "/event_handler", json={**handler, "filter": f"{name}:{samples[name]}"}
            )
            assert answer.status_code == 201, (name, answer.text)
            assert client.delete(f"/event_handler/{answer.json()['id']}").status_code == 204
            checked += 1
    assert checked > 5 * 30  # every place offered the filter fields


def test_timestamp_lists_the_events_of_its_day(herald: Herald) -> None:
    """emnify: ``timestamp`` (YYYY-MM-DDTHH:mm:ssZ) queries the events of one day."""
    _, token = tenant(herald)
    now = time.time()
    today = now - now % 86_400
    stamps = [today - 60, today + (now - today) / 2, now - 1]  # yesterday, today, today
    with herald.client(token) as client:
        posted = client.post(
            "/event",
            json=[{"event_type": {"id": 10001}, "timestamp": _iso(s)} for s in stamps],
        )
        assert posted.status_code == 201, posted.text
        ids = [event["id"] for event in posted.json()]
        day = _iso(today + 3600)  # any moment of the day
        for params in ({"q": f"timestamp:{day}"}, {"timestamp": day, "type": "10001"}):
            listed = client.get("/event", params=params).json()
            assert sorted(event["id"] for event in listed) == sorted(ids[1:]), params
        stats = client.get("/event/stats", params={"timestamp": day, "type": "10001"})
        assert stats.status_code == 200 and stats.json()["total"] == 2, stats.text
        refused = client.post(
            "/event_handler",
            json={"name": "t", "url": "http://127.0.0.1:9/x", "filter": f"timestamp:{day}"},
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0] == {
            "field": "filter.timestamp",
            "reason": "not part of a handler's filter",
        }
