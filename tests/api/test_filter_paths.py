"""One filter, four paths: the list, the stats, the live stream and a handler select the same
events (the tags case of the field-table issue), over a real server on each backend."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.delivery.receiver import receiving, start_delivery_server, tenant
from tests.support.server import HeraldServer
from tests.support.waiting import wait_until

TAGS = ["fleet_a,eu", "Fleet_A", "fleetXa", None]  # the 3rd: "_" must not be a wildcard


@pytest.fixture
def herald(tmp_path: Path, database_url: str) -> Iterator[HeraldServer]:
    server = start_delivery_server(tmp_path / "herald", database_url)
    try:
        yield server
    finally:
        server.stop()


class LiveRecords:
    """The records an open ``/event/stream`` sends, read on a thread."""

    def __init__(self, server: HeraldServer, token: str, params: dict[str, str]) -> None:
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


def test_tags_select_the_same_events_on_every_path(herald: HeraldServer) -> None:
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


def test_bad_handler_filters_name_the_field(herald: HeraldServer) -> None:
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


def test_unknown_parameters_and_values_answer_422(herald: HeraldServer) -> None:
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


def test_one_date_alone_ranges_to_now(herald: HeraldServer) -> None:
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
