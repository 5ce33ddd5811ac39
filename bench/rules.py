"""Rules: what evaluating 100 rules costs against appending the events they see.

A SQLite store of one organisation, 100 rules of the four kinds mixed (count, absence,
state, threshold; per endpoint), then N events over E endpoints appended in batches of
1000 (timed), then the evaluator's catch-up over them (timed). The figure is the ratio of
evaluating's time to appending's, in the same process; when ``bench.run`` measured HTTP
batch ingest in the same run, also to its time per event (the issue's target: at most
0.10). **Alert latency** over a real ``herald serve``, for a count, an absence and a state rule
(``PROBED``): probes, each one event of a new endpoint, from the moment the condition holds
(the acknowledgement for count; ``WAIT_S`` later for absence and state) to the "Rule fired"
event in the log (read from the database file); count also while a client posts batches of
1,000 as fast as it can (the issue's targets: p99 ≤ 1 s for count, ≤ 2 s for the others).
The ``rules`` family of ``bench.run``; alone, ``python -m bench.rules [--events N]
[--endpoints E]`` writes ``bench/results/rules.json``.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.common import (
    Mode,
    Result,
    herald_server,
    machine,
    percentiles,
    rate,
    server_database,
)
from bench.events import document
from herald.catalog import load_catalog
from herald.ids import IdGenerator
from herald.model import NewEvent
from herald.rules.alerts import FIRED
from herald.rules.alerts import TYPES as TYPES_WRITTEN
from herald.rules.evaluator import RuleEvaluator
from herald.rules.types import Condition, RuleSpec
from herald.store.sqlite import SQLiteStore
from herald.timefmt import format_ms, now_ms

RULES = 100
BATCH = 1000
MIN = 60_000
RESULTS = Path(__file__).with_name("results") / "rules.json"
TYPES = (1, 2, 3, 4, 5, 7)  # location updates, PDP contexts, attach failures


def rule_specs(count: int = RULES) -> list[RuleSpec]:
    """``count`` rules, the four kinds in turn, each with its own window or threshold."""
    specs: list[RuleSpec] = []
    for n in range(count):
        kind = n % 4
        if kind == 0:
            q, condition = f"type:{TYPES[n % len(TYPES)]}", Condition("count", (n + 1) * MIN, 5)
        elif kind == 1:
            q, condition = "", Condition("absence", (n + 1) * 10 * MIN)
        elif kind == 2:
            q, condition = "", Condition("state", (n + 1) * MIN, statuses=("OFFLINE",))
        else:
            q, condition = "type:5", Condition("threshold", megabytes=float(n), period="day")
        specs.append(RuleSpec(f"rule {n}", q, "endpoint", condition))
    return specs


def event(organisation_id: int, n: int, endpoints: int, start_ms: int) -> NewEvent:
    type_id, endpoint, at = TYPES[n % len(TYPES)], n % endpoints, start_ms + n * 100
    record: dict[str, Any] = {
        "id": None,
        "timestamp": format_ms(at),
        "event_type": {"id": type_id, "description": "t"},
        "organisation": {"id": organisation_id, "name": "Bench"},
        "alert": False,
        "description": "event",
        "endpoint": {"id": endpoint, "name": f"tracker-{endpoint}"},
        "sim": {"id": endpoint, "iccid": f"89883030000{endpoint:08d}"},
        "detail": {"volume": {"total": 0.641984, "rx": 0.418811, "tx": 0.223173}},
        "provider": "api",
        "external_id": None,
    }
    return NewEvent(
        organisation_id=organisation_id,
        timestamp_ms=at,
        received_ms=now_ms(),
        type_id=type_id,
        severity=0,
        source=0,
        alert=False,
        criticality=5,
        provider="api",
        external_id=None,
        record=record,
    )


def run(workdir: Path, events: int, endpoints: int) -> dict[str, Any]:
    store = SQLiteStore(f"sqlite:///{workdir / 'herald.db'}")
    store.migrate()
    try:
        organisation = store.organisations.create("Bench").id
        for spec in rule_specs():
            store.rules.create(organisation, spec)
        ids = IdGenerator(lambda: 1)
        start = now_ms() - events * 100
        batches = [
            [event(organisation, n, endpoints, start) for n in range(i, min(i + BATCH, events))]
            for i in range(0, events, BATCH)
        ]
        began = time.perf_counter()
        for batch in batches:
            store.log.append(batch, ids.next_ids(len(batch)))
        append_s = time.perf_counter() - began
        end = start + events * 100 + MIN  # the evaluator's clock: the same decisions each run
        evaluator = RuleEvaluator(
            store, load_catalog(), ids, max_groups=endpoints * 4, clock=lambda: end
        )
        began = time.perf_counter()
        evaluator.catch_up()
        evaluate_s = time.perf_counter() - began
        alerts = len(store.rules.alerts())
    finally:
        store.close()
    with sqlite3.connect(workdir / "herald.db") as conn:
        written = conn.execute(
            "SELECT COUNT(*) FROM events WHERE type_id IN (?, ?)", sorted(TYPES_WRITTEN)
        ).fetchone()[0]
    return {
        "events": events,
        "endpoints": endpoints,
        "rules": RULES,
        "append_s": round(append_s, 2),
        "append_events_per_s": rate(events, append_s),
        "evaluate_s": round(evaluate_s, 2),
        "evaluate_events_per_s": rate(events, evaluate_s),
        "ratio": round(evaluate_s / append_s, 3),
        "alerts_firing": alerts,
        "alert_events": written,
    }


def rules_bench(mode: Mode, workdir: Path, ingest: Result | None) -> Result:
    """The family's figures (quick: 5,000 events over 1,000 endpoints; full: 20,000 over
    5,000), with the cost to HTTP batch ingest if ``ingest`` (this run's) has it."""
    events, endpoints = (5_000, 1_000) if mode.quick else (20_000, 5_000)
    workdir.mkdir(parents=True, exist_ok=True)
    figure = run(workdir, events, endpoints)
    figure["alert_latency"] = alert_latency(workdir / "latency", 15 if mode.quick else 60)
    http = ((ingest or {}).get("http") or {}).get("batch") or {}
    if http.get("events_per_s"):
        figure["http_batch_events_per_s"] = http["events_per_s"]
        figure["cost_to_http_batch_ingest"] = round(
            http["events_per_s"] / figure["evaluate_events_per_s"], 3
        )
    return figure


PROBE_ENDPOINTS = 9_000_000  # the probes' endpoints: none of the background's
WAIT_S = 2  # the absence and state rules' window
# Each kind's rule, and the type of the event a probe posts: its condition holds at the
# acknowledgement for count, WAIT_S after it for absence and state.
PROBED: dict[str, tuple[dict[str, Any], int]] = {
    "count": (
        {"q": "type:7", "condition": {"kind": "count", "count": 1, "window_seconds": 600}},
        7,
    ),
    "absence": ({"q": "type:1", "condition": {"kind": "absence", "window_seconds": WAIT_S}}, 1),
    "state": (
        {"condition": {"kind": "state", "statuses": ["OFFLINE"], "window_seconds": WAIT_S}},
        15,  # Purge location: OFFLINE from then
    ),
}


def alert_latency(workdir: Path, probes: int) -> Result:
    """Each kind's alert latency, from the moment its condition holds to its alert in the
    log: idle, and for count also under batch ingest (module docstring)."""
    found: Result = {}
    for kind, (rule, type_id) in PROBED.items():
        with (
            herald_server(workdir / kind, HERALD_RATE_LIMIT_PER_SECOND="0") as server,
            server.client(server.admin_token) as api,
        ):
            spec = {"name": kind, "group": "endpoint", "organisation_id": 1, **rule}
            api.post("/rule", json=spec).raise_for_status()
            database = server_database(server)
            wait = 0 if kind == "count" else WAIT_S
            found[kind] = {"idle": percentiles(_probe(api, database, probes, type_id, 0, wait))}
            if kind != "count":
                continue
            stop = threading.Event()
            flood = threading.Thread(target=_flood, args=(server.url, server.admin_token, stop))
            flood.start()
            try:
                loaded = _probe(api, database, probes, type_id, probes, wait)
            finally:
                stop.set()
                flood.join()
            found[kind]["during_batch_ingest"] = percentiles(loaded)
    return found


def _probe(
    api: httpx.Client, database: Path, probes: int, type_id: int, first: int, wait_s: float
) -> list[float]:
    """Milliseconds from the moment each probe's condition holds (``wait_s`` after its
    acknowledgement) to its alert in the log."""
    found: list[float] = []
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        for n in range(first, first + probes):
            endpoint = PROBE_ENDPOINTS + n
            probe = {
                "event_type": {"id": type_id},
                "organisation": {"id": 1},
                "endpoint": {"id": endpoint},
                "timestamp": format_ms(now_ms()),
            }
            api.post("/event", json=probe).raise_for_status()
            holds = time.perf_counter() + wait_s
            sql = "SELECT 1 FROM events WHERE type_id = ? AND endpoint_id = ?"
            while conn.execute(sql, (FIRED, endpoint)).fetchone() is None:
                if time.perf_counter() - holds > 60:
                    raise TimeoutError(f"no alert for probe endpoint {endpoint}")
                time.sleep(0.005)
            found.append((time.perf_counter() - holds) * 1000)
            time.sleep(0.2)  # probes apart: each waits on its own
    return found


def _flood(url: str, token: str, stop: threading.Event) -> None:
    """Batches of 1,000 bench events, one after another, until ``stop``."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with httpx.Client(base_url=f"{url}/api/v1", headers=headers, timeout=60) as client:
        n = 0
        while not stop.is_set():
            batch = [document(i, organisation_id=1) for i in range(n, n + BATCH)]
            client.post("/event", content=orjson.dumps(batch)).raise_for_status()
            n += BATCH


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--endpoints", type=int, default=1_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figure = run(Path(tmp), args.events, args.endpoints)
    result = {"machine": machine(), "rules": figure}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    print(orjson.dumps(figure, option=orjson.OPT_INDENT_2).decode())  # noqa: T201


if __name__ == "__main__":
    main()
