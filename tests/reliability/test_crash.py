"""Crashes: SIGKILL during ingest and delivery, a full disk, a read-only database file.

Nothing acknowledged is lost.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from herald.store.sqlite import sqlite_path
from tests.delivery.receiver import DELIVERY_ENV, receiving
from tests.reliability.conftest import make_tenant
from tests.reliability.figures import Figures
from tests.reliability.traffic import Writers, batch, stored_batches
from tests.support.records import emnify_record
from tests.support.server import start_server

KILLS = int(os.environ.get("HERALD_SOAK_KILLS", "2"))


def test_sigkill_during_batch_ingest_keeps_every_acknowledged_batch_whole(
    tmp_path: Path, figures: Figures
) -> None:
    server = start_server(tmp_path / "herald", env={"HERALD_EVENT_BUDGET_PER_SECOND": "0"})
    try:
        tenant = make_tenant(server, "Crash Co", "event:create", "event:read")
        acknowledged: set[int] = set()
        next_batch = 0
        for _ in range(KILLS):
            writers = Writers(server, tenant.token)
            writers._next = next_batch
            threads = writers.start(4)
            deadline = time.monotonic() + 30
            while len(writers.acknowledged) < 10 and time.monotonic() < deadline:
                time.sleep(0.01)
            server.kill()  # mid-flight: the writers have requests open
            writers.stop.set()
            for thread in threads:
                thread.join(10)
            acknowledged |= writers.acknowledged
            next_batch = writers._next
            assert not [s for s in writers.statuses if s >= 500], writers.statuses
            server.start()

        stored = stored_batches(server, tenant.token)
        lost = sum(50 - stored.get(number, 0) for number in acknowledged)
        half = [number for number, count in stored.items() if count != 50]
        figures.add("crash.kills_during_ingest", KILLS)
        figures.add("crash.events_acknowledged", 50 * len(acknowledged))
        figures.add("crash.events_lost", lost)
        figures.add("crash.batches_half_written", len(half))
        assert acknowledged, "no batch was acknowledged before the kill"
        assert lost == 0
        assert half == []
    finally:
        server.stop()


def test_sigkill_during_delivery_loses_nothing(tmp_path: Path, figures: Figures) -> None:
    server = start_server(tmp_path / "herald", env=DELIVERY_ENV)
    try:
        tenant = make_tenant(server, "Hooked Co")
        with receiving() as receiver:
            with server.client(tenant.token) as client:
                created = client.post(
                    "/event_handler",
                    json={"name": "all", "url": receiver.url, "batch": {"max_events": 10}},
                )
                assert created.status_code == 201, created.text
                written: list[int] = []
                for number in range(10):
                    response = client.post("/event", json=batch(number, 30))
                    assert response.status_code == 201
                    written += [record["id"] for record in response.json()]
            receiver.wait_for(lambda: len(receiver.delivered()) >= 3)
            server.kill()  # some batches delivered, the rest not yet
            server.start()
            receiver.wait_for(lambda: set(written) <= set(receiver.delivered_ids()), timeout=60)
        lost = len(set(written) - set(receiver.delivered_ids()))
        figures.add("crash.kills_during_delivery")
        figures.add("crash.events_to_deliver", len(written))
        figures.add("crash.delivery_events_lost", lost)
        assert lost == 0
    finally:
        server.stop()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (root only): a disk that fills up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(path: Path) -> None:
    # unbuffered: a buffered file's close() would try the failed write again, and raise
    with path.open("wb", buffering=0) as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
        except OSError:
            pass


def test_full_disk_answers_503_and_corrupts_nothing(
    small_disk: Path, tmp_path: Path, figures: Figures
) -> None:
    database = small_disk / "herald.db"
    server = start_server(tmp_path / "herald", database_url=f"sqlite:///{database}")
    try:
        tenant = make_tenant(server, "Full Disk Co", "event:create", "event:read")
        with server.client(tenant.token) as client:
            assert client.post("/event", json=batch(0, 50)).status_code == 201
            _fill(small_disk / "filler")
            responses = [client.post("/event", json=batch(n, 200)) for n in (1, 2, 3)]
            statuses = [response.status_code for response in responses]
            assert all("full" in r.json()["detail"] for r in responses if r.status_code == 503)
            figures.add("faults.full_disk_writes_refused", statuses.count(503))
            assert 503 in statuses
            assert not [s for s in statuses if s >= 500 and s != 503]
            (small_disk / "filler").unlink()
            assert client.post("/event", json=batch(4, 50)).status_code == 201
        stored = stored_batches(server, tenant.token)
        assert stored[0] == 50 and stored[4] == 50
        assert all(count in (0, 200) for n, count in stored.items() if n in (1, 2, 3))
    finally:
        server.stop()
    with sqlite3.connect(database) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)


EMNIFY_RECORD = emnify_record(
    "ro-1",
    event_severity={"id": "1", "description": "WARN"},
    alert=1,
    description="PDP Context Request rejected",
    endpoint={"id": "4711"},
)


def _chattr(flag: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["chattr", flag, str(path)], capture_output=True, text=True)


def test_read_only_database_answers_503_keeps_reads_and_corrupts_nothing(
    tmp_path: Path, figures: Figures
) -> None:
    """The database file made immutable (``chattr +i``, which binds root too) under a restart.

    A read-only bind mount would not do: WAL mode needs the ``-shm`` file beside the
    database, so a read-only directory refuses reads as well.
    """
    if shutil.which("chattr") is None:
        pytest.skip("chattr (e2fsprogs) is not installed")
    server = start_server(tmp_path / "herald")
    database = Path(sqlite_path(server.database_url))
    try:
        tenant = make_tenant(server, "Read-only Co", "event:create", "event:read", "ingest:emnify")
        with server.client(tenant.token) as client:
            for number in range(3):
                assert client.post("/event", json=batch(number, 50)).status_code == 201
            assert client.post("/ingest/emnify", json=EMNIFY_RECORD).status_code == 200
        server.stop()
        made = _chattr("+i", database)
        if made.returncode != 0:
            pytest.skip(f"cannot make the database immutable (needs root, ext4): {made.stderr}")
        try:
            server.start()
            with server.client(tenant.token) as client:
                refused = [
                    client.post("/event", json=batch(3, 50)),
                    client.post("/event", json={"event_type": {"id": 10001}}),
                    client.post("/ingest/emnify", json={**EMNIFY_RECORD, "id": "ro-2"}),
                ]
                emnify = client.get("/event", params={"provider": "emnify"})
            for response in refused:
                assert response.status_code == 503, response.text
                assert response.headers["content-type"] == "application/problem+json"
                assert "read-only" in response.json()["detail"]
                assert int(response.headers["Retry-After"]) >= 1
            figures.add("faults.read_only_writes_refused", len(refused))
            assert [e["external_id"] for e in emnify.json()] == ["ro-1"]  # reads work
            assert stored_batches(server, tenant.token) == {0: 50, 1: 50, 2: 50}
            server.stop()
        finally:
            _chattr("-i", database)
        server.start()
        with server.client(tenant.token) as client:
            assert client.post("/event", json=batch(3, 50)).status_code == 201
            assert len(client.get("/event", params={"provider": "emnify"}).json()) == 1
        assert stored_batches(server, tenant.token) == dict.fromkeys(range(4), 50)
    finally:
        server.stop()
    with sqlite3.connect(database) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
