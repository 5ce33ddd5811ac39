"""Usage: what usage records cost ingest, and how fast the daily answer is.

``python -m bench.usage [--postgres]``: on a real ``herald serve``, 1NCE batches of 1000
usage records through ``/ingest/1nce`` against 1000 event records through the same route in
the same run, interleaved (the baseline: events/s); then ``/endpoint/{id}/stats/daily`` over
28 days for one endpoint with a record and a closed session each hour, and ``/stats``,
beside ``/endpoint/{id}/event?per_page=1`` (the same auth, routing and JSON: the baseline).
Results in ``bench/results/usage.json``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from tests.support import postgres

from bench.common import herald_server, machine, percentiles, rate
from herald.timefmt import format_ms, now_ms

BATCH = 1000
BATCHES = 20
SAMPLES = 200
DAYS = 28  # within the default retention (30 days)
HOUR = 3_600_000
RESULTS = Path(__file__).with_name("results") / "usage.json"


def _usage(record_id: int, endpoint: int, end_ms: int) -> dict[str, Any]:
    return {
        "id": record_id,
        "traffic_type": {"id": 5, "description": "Data"},
        "start_timestamp": format_ms(end_ms - 900_000),
        "end_timestamp": format_ms(end_ms),
        "endpoint": {"id": endpoint, "name": f"tracker-{endpoint}"},
        "sim": {"id": endpoint, "iccid": f"89883030000{endpoint:08d}"},
        "volume": {"total": 0.641984, "rx": 0.418811, "tx": 0.223173},
    }


def _event(record_id: int, endpoint: int, at_ms: int) -> dict[str, Any]:
    return {
        "id": record_id,
        "timestamp": format_ms(at_ms),
        "event_type": {"id": 5, "description": "Delete PDP Context"},
        "event_severity": {"id": 0},
        "event_source": {"id": 0},
        "description": "PDP Context deleted.",
        "endpoint": {"id": endpoint, "name": f"tracker-{endpoint}"},
        "detail": {"volume": {"total": 0.641984, "rx": 0.418811, "tx": 0.223173}},
    }


def _post(client: httpx.Client, body: bytes) -> float:
    started = time.perf_counter()
    response = client.post("/ingest/1nce", content=body)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200 and response.json()["quarantined"] == 0, response.text
    return elapsed


def run(workdir: Path, database_url: str | None) -> dict[str, Any]:
    with herald_server(
        workdir, database_url, HERALD_DEMO="0", HERALD_EVENT_BUDGET_PER_SECOND="0"
    ) as server:
        organisation = server.create_org("Bench")
        token = server.create_token(organisation, "ingest:1nce", "event:read")
        with server.client(token) as client:
            client.timeout = httpx.Timeout(120)
            start = now_ms() - DAYS * 24 * HOUR
            usage_s = events_s = 0.0
            for batch in range(BATCHES):  # interleaved: the same disk and cache conditions
                ids = range(batch * BATCH, (batch + 1) * BATCH)
                at = [start + i * (DAYS - 1) * 24 * HOUR // (BATCHES * BATCH) for i in ids]
                usage_s += _post(
                    client,
                    orjson.dumps([_usage(i, i % 500, t) for i, t in zip(ids, at, strict=True)]),
                )
                events_s += _post(
                    client,
                    orjson.dumps([_event(i, i % 500, t) for i, t in zip(ids, at, strict=True)]),
                )
            # one busy endpoint: a usage record and a closed session each hour for the days
            busy = [start + h * HOUR for h in range((DAYS - 1) * 24)]
            _post(client, orjson.dumps([_usage(10**9 + h, 7, t) for h, t in enumerate(busy)]))
            _post(client, orjson.dumps([_event(10**9 + h, 7, t) for h, t in enumerate(busy)]))
            daily: list[float] = []
            stats: list[float] = []
            baseline: list[float] = []
            params = {"start_date": format_ms(start)[:10], "end_date": format_ms(now_ms())[:10]}
            for _ in range(SAMPLES):
                for samples, path, query in (
                    (daily, "/endpoint/7/stats/daily", params),
                    (stats, "/endpoint/7/stats", {}),
                    (baseline, "/endpoint/7/event", {"per_page": "1"}),  # the same HTTP path
                ):
                    began = time.perf_counter()
                    response = client.get(path, params=query)
                    samples.append((time.perf_counter() - began) * 1000)
                    assert response.status_code == 200, response.text
    usage_rate, events_rate = rate(BATCHES * BATCH, usage_s), rate(BATCHES * BATCH, events_s)
    return {
        "backend": "postgres" if database_url else "sqlite",
        "usage_records_per_s": usage_rate,
        "event_records_per_s": events_rate,
        "usage_vs_events": round(usage_rate / events_rate, 2),
        "records_per_batch": BATCH,
        f"stats_daily_{DAYS}_days": percentiles(daily),
        "stats": percentiles(stats),
        "baseline_event_list_one_item": percentiles(baseline),
        "busy_endpoint": f"{len(busy)} usage records and as many closed sessions, {DAYS} days",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL (local)")
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": machine(), "runs": []}
    with tempfile.TemporaryDirectory() as scratch:
        results["runs"].append(run(Path(scratch) / "sqlite", None))
        if args.postgres:
            with postgres.throwaway_database() as url:
                results["runs"].append(run(Path(scratch) / "postgres", url))
    RESULTS.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(orjson.dumps(results["runs"], option=orjson.OPT_INDENT_2).decode())  # noqa: T201


if __name__ == "__main__":
    main()
