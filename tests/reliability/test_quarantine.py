"""The quarantine attack of issue 28 (defect 1), repeated against a real ``herald serve``:
tenant A posts request bodies that are one long JSON string in an array (7.5 MB each, 20 of
them under ``make soak``) and batches of records just under the size a quarantined record
keeps, then reads its quarantine 1,000 records a page and retries 1,000, while tenant B
reads its newest event every 50 ms. Before the bounds, 20 such posts kept 150 MB and one
page decoded them all on the event loop (RSS 271 -> 844 MB, B's reads held up to 6.7 s).

Figures per backend: what the quarantine kept of what was sent, the page's and the retry's
size and time, the server's RSS, and B's slowest read."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.reliability.conftest import SOAK, make_tenant
from tests.reliability.figures import Figures
from tests.reliability.test_load import RSS_CEILING_MIB, RssSampler
from tests.support.server import start_server
from tests.support.waiting import SLACK

HUGE_POSTS = 20 if SOAK else 4
HUGE_BYTES = 7_500_000
RECORD_BYTES = 64 * 1024  # HERALD_QUARANTINE_RECORD_BYTES's default
READ_BYTES = 4 * 1024**2  # HERALD_QUARANTINE_READ_BYTES's default
WHOLE_BATCHES = 2  # of 100 records of 60 KB: kept whole, and retried
BYSTANDER_WORST_SECONDS = 2.5


class Bystander(threading.Thread):
    """Tenant B reading its newest event every 50 ms; the time of each read."""

    def __init__(self, client: httpx.Client) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.stop = threading.Event()
        self.seconds: list[float] = []
        self.statuses: set[int] = set()

    def run(self) -> None:
        while not self.stop.is_set():
            sent = time.monotonic()
            status = self.client.get("/event", params={"per_page": 1}).status_code
            took = time.monotonic() - sent
            self.seconds.append(took)
            self.statuses.add(status)
            self.stop.wait(max(0.0, 0.05 - took))


def _mib(size: float) -> str:
    return f"{size / 1024**2:.2f} MiB"


def test_the_quarantine_attack_is_bounded(
    database_url: str, backend: str, tmp_path: Path, figures: Figures
) -> None:
    server = start_server(tmp_path / "herald", database_url=database_url)
    try:
        a = make_tenant(server, "Attacker", "ingest:emnify", "event:read")
        b = make_tenant(server, "Bystander", "event:create", "event:read")
        assert server.process is not None
        rss = RssSampler(server.process.pid, interval=0.2)
        with server.client(a.token) as as_a, server.client(b.token) as as_b:
            as_b.post("/event", json={"event_type": {"id": 10001}}).raise_for_status()
            bystander = Bystander(as_b)
            rss.start()
            bystander.start()
            sent = 0
            posts: list[dict[str, Any]] = []
            for number in range(HUGE_POSTS):
                body = orjson.dumps([f"{number:04d}" + "x" * (HUGE_BYTES - 10)])
                sent += len(body)
                answer = as_a.post(
                    "/ingest/emnify", content=body, headers={"Content-Type": "application/json"}
                )
                assert answer.status_code == 200, answer.text[:500]
                posts.append(answer.json())
            for batch in range(WHOLE_BATCHES):
                records = [f"{batch}-{i:03d}-" + "y" * 60_000 for i in range(100)]
                answer = as_a.post("/ingest/emnify", json=records)
                assert answer.status_code == 200, answer.text[:500]
                posts.append(answer.json())

            started = time.monotonic()
            page = as_a.get("/ingest/rejected", params={"per_page": 1000})
            page_seconds = time.monotonic() - started
            every, cursor = page.json(), page.headers.get("X-Next-Cursor")
            pages = 1
            while cursor is not None:
                more = as_a.get("/ingest/rejected", params={"per_page": 1000, "cursor": cursor})
                assert more.status_code == 200, more.text[:500]
                pages, every = pages + 1, every + more.json()
                cursor = more.headers.get("X-Next-Cursor")
            started = time.monotonic()
            retry = as_a.post("/ingest/rejected/retry", params={"limit": 1000})
            retry_seconds = time.monotonic() - started
            bystander.stop.set()
            bystander.join(30)
            samples = rss.stop()
            first = page.json()
    finally:
        server.stop()

    read = len(every)
    huge = [record for record in every if record["truncated"]]
    kept = sum(len(record["record_prefix"].encode()) for record in huge)
    retried = retry.json()
    worst = max(bystander.seconds)
    mib = [round(kib / 1024) for kib in samples]
    figures.add(f"quarantine.{backend}.posts", len(posts))
    figures.add(f"quarantine.{backend}.records_read_back", read)
    figures.add(f"quarantine.{backend}.bystander_reads", len(bystander.seconds))
    figures.add(f"quarantine.{backend}.5xx", sum(s >= 500 for s in bystander.statuses))
    figures.note(
        f"quarantine.{backend}.kept",
        f"{HUGE_POSTS} bodies of {_mib(HUGE_BYTES)} (one string each, {_mib(sent)} in all): "
        f"{len(huge)} records truncated to {_mib(kept)} in all; "
        f"{WHOLE_BATCHES * 100} records of 60 KB kept whole",
    )
    figures.note(
        f"quarantine.{backend}.page",
        f"per_page=1000: {len(first)} records, {_mib(len(page.content))} in "
        f"{page_seconds:.2f} s; all {read} read in {pages} pages (X-Next-Cursor)",
    )
    figures.note(
        f"quarantine.{backend}.retry",
        f"limit=1000: {retried['retried']} retried ({_mib(READ_BYTES)} budget), "
        f"{retried['unretryable']} truncated not retried, in {retry_seconds:.2f} s",
    )
    figures.note(
        f"quarantine.{backend}.rss_mib",
        f"{mib[0]} before, peak {max(mib)}, {mib[-1]} after ({len(mib)} samples)",
    )
    figures.note(
        f"quarantine.{backend}.bystander_worst_seconds",
        f"{worst:.2f} over {len(bystander.seconds)} reads",
    )

    assert all(post["quarantined"] == len(post["records"]) for post in posts)
    assert len(huge) == HUGE_POSTS and kept <= HUGE_POSTS * RECORD_BYTES
    assert read == HUGE_POSTS + WHOLE_BATCHES * 100
    assert len(page.content) < READ_BYTES + 2 * RECORD_BYTES  # the budget, one record over
    assert pages > 1  # the 60 KB records do not fit one page's budget
    assert retry.status_code == 200 and 0 < retried["retried"] < WHOLE_BATCHES * 100
    assert retried["unretryable"] == HUGE_POSTS
    assert bystander.statuses == {200}
    assert max(mib) < RSS_CEILING_MIB, mib
    assert worst < BYSTANDER_WORST_SECONDS * SLACK, f"B's slowest read took {worst:.2f} s"
