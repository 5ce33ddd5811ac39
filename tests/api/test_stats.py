"""Analytics: /event/stats against the app (in process) and a real store."""

from __future__ import annotations

from typing import Any

from tests.support.dates import D3
from tests.support.herald import Herald

BASE = f"{D3}T10:"


def pdp_delete(org: int, endpoint: int, minute: int, mb: float, country: str) -> dict[str, Any]:
    return {
        "event_type": {"id": 5},
        "organisation": {"id": org},
        "timestamp": f"{BASE}{minute:02d}:00Z",
        "endpoint": {"id": endpoint, "name": f"tracker-{endpoint}"},
        "detail": {"name": "Vodafone", "country": {"name": country}, "volume": {"total": mb}},
    }


def test_counts_by_bucket_and_group_and_top_endpoints(herald: Herald) -> None:
    org = herald.create_org("Acme")
    other = herald.create_org("Other")
    events = [
        pdp_delete(org, 1, 0, 1.5, "Germany"),
        pdp_delete(org, 1, 1, 2.0, "Germany"),
        pdp_delete(org, 2, 1, 10.0, "Austria"),
        {
            "event_type": {"id": 10001},
            "organisation": {"id": org},
            "timestamp": f"{BASE}02:30Z",
            "event_severity": {"id": 2},
            "endpoint": {"id": 3},
        },
        pdp_delete(other, 9, 0, 99.0, "France"),
    ]
    token = herald.create_token(org, "event:read")
    with herald.client(herald.admin_token) as admin, herald.client(token) as client:
        assert admin.post("/event", json=events).status_code == 201
        span = {"from": f"{BASE}00:00Z", "until": f"{BASE}59:00Z"}

        by_minute = client.get(
            "/event/stats", params={**span, "bucket": "minute", "group": "severity"}
        ).json()
        assert by_minute["total"] == 4
        assert by_minute["volume_mb"] == 13.5
        assert [(r["time"][11:16], r["label"], r["count"]) for r in by_minute["rows"]] == [
            ("10:00", "Info", 1),
            ("10:01", "Info", 2),
            ("10:02", "Critical", 1),
        ]

        top = client.get(
            "/event/stats", params={**span, "group": "endpoint", "order": "volume", "limit": 1}
        ).json()
        assert top["rows"] == [{"key": 2, "label": "tracker-2", "count": 1, "volume_mb": 10.0}]
        countries = client.get("/event/stats", params={**span, "group": "country"}).json()
        assert [(r["key"], r["count"]) for r in countries["rows"]] == [
            ("Germany", 2),
            ("Austria", 1),
        ]
        types = client.get("/event/stats", params={**span, "group": "type", "q": "type:5"})
        assert [(r["label"], r["count"]) for r in types.json()["rows"]] == [
            ("Delete PDP Context", 3)
        ]
        everyone = admin.get("/event/stats", params={**span, "group": "operator"}).json()
        assert everyone["rows"][0] == {
            "key": "Vodafone",
            "label": "Vodafone",
            "count": 4,
            "volume_mb": 112.5,
        }


def test_bad_parameters_answer_problems(herald: Herald) -> None:
    with herald.client(herald.admin_token) as client:
        for params, status, field in [
            ({"bucket": "week"}, 400, "bucket"),
            ({"group": "colour"}, 400, "group"),
            ({"group": "type", "limit": "0"}, 400, "limit"),
            ({"bucket": "minute", "from": "2025-01-01T00:00:00Z"}, 422, "bucket"),
            ({"q": "nope:1"}, 422, "q.nope"),
        ]:
            response = client.get("/event/stats", params=params)
            assert response.status_code == status, (params, response.text)
            assert response.json()["errors"][0]["field"] == field
    with herald.client() as anonymous:
        assert anonymous.get("/event/stats").status_code == 401
