"""What one tenant's writing at its full event budget does to another tenant's reads (issue 28).

``python -m bench.neighbour [--quick] [--postgres]``, and in ``make bench`` as part of the
ingest family (``ingest.http.neighbour_at_budget``). On one real ``herald serve`` with its
default budget (``HERALD_EVENT_BUDGET_*``): a neighbour organisation reads its newest event
(``GET /event?per_page=1``) every 10 ms in rounds of three 5 s windows: with the server
otherwise idle; while organisation "Writer" posts batches of 1,000 events from 4 clients
that retry after ``Retry-After`` when refused (so it writes at its full budget, its burst at
the start of each window included); while organisation "Flood" does the same with a budget
of its own far above what the node can take (what one tenant could do before the budget).
Reported: the neighbour's p50 / p99 in each kind of window, the loaded p99 over the idle
p99, and the events per second each writer had stored.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson
from tests.support import postgres
from tests.support.server import HeraldServer

from bench.common import Result, herald_server, machine, percentiles, rate
from bench.events import document
from herald.timefmt import now_ms

WRITERS = 4  # as in the measurement
BATCH = 1000
BODIES = 12  # distinct batch bodies, posted in turn (events without ids: each post is new)
NEIGHBOUR_EVENTS = 100
PAUSE_S = 0.01
WINDOW_S = 5.0  # each window of a round
SETTLE_S = 2.0  # after a loaded window: its last batches end, the device state folds them
TARGET_RATIO = 3.0  # the neighbour's p99 under load at most 3x its idle p99
UNLIMITED = ("--events-per-second", "1000000", "--burst", "10000000")


def _bodies(organisation_id: int) -> list[bytes]:
    start = now_ms() - 3_600_000
    return [
        orjson.dumps([document(b * BATCH + i, start + i, organisation_id) for i in range(BATCH)])
        for b in range(BODIES)
    ]


class Writers:
    """WRITERS clients posting batches in turn while ``go`` is set; a 429 waits its
    Retry-After (so the writer stays at its budget, as a provider's streamer does)."""

    def __init__(self, server: HeraldServer, token: str, bodies: list[bytes]) -> None:
        self.server, self.token, self.bodies = server, token, bodies
        self.stored = 0
        self.refused = 0
        self.go = threading.Event()
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._next = 0

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        with httpx.Client(base_url=f"{self.server.url}/api/v1", headers=headers, timeout=60) as c:
            while not self.stop.is_set():
                if not self.go.wait(0.1):
                    continue
                with self._lock:
                    body = self.bodies[self._next % len(self.bodies)]
                    self._next += 1
                reply = c.post("/event", content=body)
                with self._lock:
                    if reply.status_code == 201:
                        self.stored += BATCH
                        continue
                    if reply.status_code != 429:
                        raise RuntimeError(f"ingest answered {reply.status_code}: {reply.text}")
                    self.refused += 1
                self.stop.wait(float(reply.headers.get("Retry-After", "1")))

    def start(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._run, daemon=True) for _ in range(WRITERS)]
        for thread in threads:
            thread.start()
        return threads


def _reads(client: httpx.Client, seconds: float, samples: list[float]) -> None:
    """The neighbour's newest-event reads for ``seconds``, in milliseconds."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        began = time.perf_counter()
        reply = client.get("/event", params={"per_page": 1})
        samples.append((time.perf_counter() - began) * 1000)
        if reply.status_code != 200 or len(reply.json()) != 1:
            raise RuntimeError(f"the neighbour's read answered {reply.status_code}")
        time.sleep(PAUSE_S)


def _window(client: httpx.Client, writers: Writers, seconds: float, samples: list[float]) -> float:
    """The neighbour's reads while ``writers`` write for ``seconds``; then their last
    requests end and the server settles (the reads meanwhile are left out). Seconds written."""
    writers.go.set()
    began = time.perf_counter()
    _reads(client, seconds, samples)
    writers.go.clear()
    elapsed = time.perf_counter() - began
    time.sleep(SETTLE_S)
    return elapsed


def run(workdir: Path, database_url: str | None, rounds: int) -> Result:
    """Rounds of three windows on one server (SQLite, or the PostgreSQL at ``database_url``):
    the neighbour alone, while Writer writes at its budget, while Flood writes unbounded.
    Alternating keeps the three under the same machine load (this VM is shared)."""
    env = {} if database_url else {"HERALD_SQLITE_SYNCHRONOUS": "FULL"}
    with herald_server(workdir, database_url, **env) as server:
        writer, flood = server.create_org("Writer"), server.create_org("Flood")
        neighbour = server.create_org("Neighbour")
        db = ("--database", server.database_url)
        server.cli("org", "limits", str(flood), *UNLIMITED, *db)
        at_budget = Writers(server, server.create_token(writer, "event:create"), _bodies(writer))
        unbounded = Writers(server, server.create_token(flood, "event:create"), _bodies(flood))
        reader = server.create_token(neighbour, "event:read", "event:create")
        threads = at_budget.start() + unbounded.start()
        idle: list[float] = []
        budgeted: list[float] = []
        flooded: list[float] = []
        budget_s = flood_s = 0.0
        try:
            with server.client(reader) as client:
                seed = [document(i, now_ms() - 60_000, neighbour) for i in range(NEIGHBOUR_EVENTS)]
                client.post("/event", content=orjson.dumps(seed)).raise_for_status()
                time.sleep(SETTLE_S)  # the device state folds the seed
                for _ in range(rounds):
                    _reads(client, WINDOW_S, idle)
                    budget_s += _window(client, at_budget, WINDOW_S, budgeted)
                    flood_s += _window(client, unbounded, WINDOW_S, flooded)
        finally:
            for writers in (at_budget, unbounded):
                writers.stop.set()
            for thread in threads:
                thread.join(120)
    alone = percentiles(idle)
    loaded = {
        **percentiles(budgeted),
        "writer_events_per_s": rate(at_budget.stored, budget_s),
        "writer_refused_429": at_budget.refused,
    }
    unbudgeted = {**percentiles(flooded), "writer_events_per_s": rate(unbounded.stored, flood_s)}
    return {
        "backend": "postgres" if database_url else "sqlite",
        "rounds": rounds,
        "window_s": WINDOW_S,
        "writers": WRITERS,
        "batch": BATCH,
        "idle": alone,
        "at_budget": loaded,
        "unbudgeted": unbudgeted,
        "p99_ratio_at_budget": round(loaded["p99_ms"] / alone["p99_ms"], 2),
        "p99_ratio_unbudgeted": round(unbudgeted["p99_ms"] / alone["p99_ms"], 2),
        "target_p99_ratio": TARGET_RATIO,
    }


def neighbour_at_budget(workdir: Path, quick: bool, with_postgres: bool = True) -> Result:
    """SQLite, and PostgreSQL when a server is reachable (else the reason it is left out)."""
    rounds = 4 if quick else 12
    results: Result = {"sqlite": run(workdir / "neighbour-sqlite", None, rounds)}
    reason = postgres.unavailable_reason()
    if not with_postgres:
        results["postgres"] = "not run (--no-postgres)"
    elif reason:
        results["postgres"] = f"not run: {reason}"
    else:
        with postgres.throwaway_database() as url:
            results["postgres"] = run(workdir / "neighbour-postgres", url, rounds)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="4 rounds instead of 12")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="herald-neighbour-") as scratch:
        results = {
            "machine": machine(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            **neighbour_at_budget(Path(scratch), args.quick, not args.no_postgres),
        }
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())  # noqa: T201


if __name__ == "__main__":
    main()
