"""What every benchmark family shares: percentiles, RSS, the machine, servers, results."""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.server import HeraldServer, start_server

from herald.store.sqlite import _CACHE_KIB
from herald.timefmt import parse_timestamp, to_ms

ROOT = Path(__file__).resolve().parent
SCRATCH = ROOT / "scratch"
Result = dict[str, Any]
READER_CACHE_KIB = _CACHE_KIB  # the page cache of each of Herald's SQLite connections


@dataclass(frozen=True)
class Mode:
    """The size of a run: ``quick`` (a few minutes) or ``full``."""

    quick: bool
    query_events: int  # the query store
    query_samples: int  # per query (page 50 takes a quarter of them)
    ingest_events: int  # through the store, and the raw baselines
    http_batch_events: int
    http_single_events: int
    delivery_events: int  # batched
    delivery_single_events: int
    latency_seconds: float

    @property
    def name(self) -> str:
        return "quick" if self.quick else "full"


QUICK = Mode(True, 1_000_000, 200, 100_000, 100_000, 3_000, 5_000, 500, 10)
FULL = Mode(False, 10_000_000, 1_000, 500_000, 500_000, 20_000, 30_000, 3_000, 30)


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    """p50 and p99 (inclusive method) of latencies in milliseconds, with the sample size."""
    ordered = sorted(samples_ms)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50_ms": round(cuts[49], 3), "p99_ms": round(cuts[98], 3), "samples": len(ordered)}


def timed(work: Callable[[], object]) -> float:
    """Seconds ``work()`` took."""
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def rate(events: int, seconds: float) -> float:
    return round(events / seconds, 1)


def sending_seconds(api: Any, handler_id: int) -> float:
    """How long a handler took from the start of its first attempt to the end of its last,
    read from its attempt log: the time Herald spent delivering, without the wait for a
    worker to take the handler up (the raw loops start on a warm connection too)."""
    return span_seconds(attempt_spans(api, handler_id))


def span_seconds(spans: list[tuple[int, int, int]]) -> float:
    """Seconds from the start of the first of these attempts to the end of the last."""
    return max(max(end for _, end, _ in spans) - spans[0][0], 1) / 1000


def attempts(api: Any, handler_id: int) -> Iterator[dict[str, Any]]:
    """A handler's attempt log as the API pages it (newest first)."""
    cursor: int | None = None
    while True:
        params = {"per_page": 1000, **({"cursor": cursor} if cursor else {})}
        reply = api.get(f"/event_handler/{handler_id}/delivery", params=params)
        reply.raise_for_status()
        yield from reply.json()
        if "X-Next-Cursor" not in reply.headers:
            return
        cursor = int(reply.headers["X-Next-Cursor"])


def attempt_spans(api: Any, handler_id: int) -> list[tuple[int, int, int]]:
    """Each attempt of a handler as (start ms, end ms, events), oldest first."""
    spans: list[tuple[int, int, int]] = []
    for attempt in attempts(api, handler_id):
        at = to_ms(parse_timestamp(attempt["time"]))
        spans.append((at, at + attempt["latency_ms"], len(attempt["event_ids"])))
    return sorted(spans)


def wait_caught_up(api: Any, handler_id: int, timeout_s: float = 600) -> None:
    """Until the handler's cursor (moved only after an ack) is at the end of the log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = api.get(f"/event_handler/{handler_id}/status").json()
        if status["lag_events"] == 0:
            return
        time.sleep(0.2)  # counting the lag costs the server CPU the worker shares
    raise RuntimeError(f"handler {handler_id} did not catch up in time")


def wait_device_state(database_path: Path, timeout_s: float = 600) -> float:
    """Seconds until the device-state projector's cursor reaches the end of the log of the
    SQLite file ``database_path`` (whichever process keeps the states)."""
    began = time.perf_counter()
    with sqlite3.connect(f"file:{database_path}?mode=ro", uri=True) as conn:
        while True:
            cursor = conn.execute("SELECT cursor_seq FROM device_projection").fetchone()[0]
            newest = conn.execute("SELECT MAX(seq) FROM events").fetchone()[0] or 0
            if cursor >= newest:
                return time.perf_counter() - began
            if time.perf_counter() - began > timeout_s:
                raise RuntimeError("the device-state projector did not catch up in time")
            time.sleep(0.02)


def server_database(server: HeraldServer) -> Path:
    """The SQLite file a bench server runs on."""
    return Path(server.database_url.removeprefix("sqlite:///"))


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system, every thread) a live process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    """The peak resident set (VmHWM) of a live process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmHWM for process {pid}")


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        memory = int(meminfo.read_text().split()[1]) // 1024
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_mb": memory,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "os": f"{platform.system()} {platform.release()}",
        "commit": _commit(),
    }


def _commit() -> str:
    """HEAD's short hash, ``-dirty`` when the code measured (src, the bench's modules, the
    test server helper) differs from it, as ``git describe --dirty`` marks it."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT.parent,
            capture_output=True,
            text=True,
            check=True,
        )
        changed = subprocess.run(
            ["git", "diff", "--quiet", "HEAD", "--", "src", "bench/*.py", "tests/support"],
            cwd=ROOT.parent,
            check=False,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip() + ("-dirty" if changed.returncode else "")


@contextmanager
def herald_server(
    workdir: Path, database_url: str | None = None, **env: str
) -> Iterator[HeraldServer]:
    """A real ``herald serve`` on loopback (the test suite's helper), stopped afterwards."""
    server = start_server(
        workdir,
        env={"HERALD_LOG_LEVEL": "warning", **env},
        database_url=database_url,
    )
    try:
        yield server
    finally:
        server.stop()


def wal_checkpoint(path: Path) -> None:
    """Fold the WAL into the database file (so its size is the data's size)."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def disk_bytes(path: Path, leaving_out: tuple[str, ...] = ()) -> int:
    """The pages the database uses, in bytes (free pages of deleted data left out), less
    those of the tables ``leaving_out`` and their indexes."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        left_out = 0
        if leaving_out:
            marks = ", ".join("?" * len(leaving_out))
            left_out = conn.execute(
                "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name IN "
                f"(SELECT name FROM sqlite_master WHERE tbl_name IN ({marks}))",
                leaving_out,
            ).fetchone()[0]
    return int((pages - free) * size - left_out)
