"""Live streams as a hostile tenant would use them: too many, and all busy at once.

Tenant A opens many streams and writes; tenant B's requests must stay about as fast as
without A's streams (measured against a baseline in the same run, never in absolute time).
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.conftest import Tenant, make_tenant
from tests.reliability.figures import Figures
from tests.support.server import HeraldServer, start_server

STREAMS = 100  # tenant A's streams: the caps are raised to this for the test
EVENTS = 1000  # written by each tenant in a burst
WORST_RATIO = 30  # B's slowest request, loaded over baseline: generous (175 before the fix)
DEADLINE = 60.0
MARK = b"event: event\n"


class Crowd:
    """Many live streams on raw sockets, read and discarded by one thread that counts
    the events they received."""

    def __init__(self, server: HeraldServer, token: str, count: int) -> None:
        self.received = 0
        self.refused = 0
        self._selector = selectors.DefaultSelector()
        self._sockets: list[socket.socket] = []
        for _ in range(count):
            self.open(server, token)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def open(self, server: HeraldServer, token: str) -> bool:
        """One more stream; False if the server refused it (and then it is closed)."""
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE)
        request = f"GET /api/v1/event/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}"
        sock.sendall(request.encode() + b"\r\n\r\n")
        head = sock.recv(65536)
        if not head.startswith(b"HTTP/1.1 200"):
            assert head.startswith(b"HTTP/1.1 429"), head[:300]
            self.refused += 1
            sock.close()
            return False
        sock.setblocking(False)
        self._selector.register(sock, selectors.EVENT_READ, [b""])
        self._sockets.append(sock)
        return True

    def _read(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(0.1):
                try:
                    data = key.fileobj.recv(1 << 20)  # type: ignore[union-attr]
                except BlockingIOError:
                    continue
                carried: list[bytes] = key.data
                text = carried[0] + data
                self.received += text.count(MARK)
                carried[0] = text[-(len(MARK) - 1) :]  # a mark cut in two is counted once

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self._sockets:
            sock.close()


@pytest.fixture
def crowded(tmp_path: Path) -> Iterator[HeraldServer]:
    env = {
        "HERALD_STREAM_MAX_PER_TOKEN": str(STREAMS),
        "HERALD_STREAM_MAX_PER_ORGANISATION": str(STREAMS),
    }
    server = start_server(tmp_path / "herald", env=env)
    try:
        yield server
    finally:
        server.stop()


def _event(organisation_id: int) -> dict[str, object]:
    return {"event_type": {"id": 10001}, "organisation": {"id": organisation_id}, "detail": {}}


def _worst_request(
    server: HeraldServer, prober: Tenant, writers: list[Tenant], until: Crowd | None, expected: int
) -> float:
    """B's slowest ``GET /event/type`` while ``writers`` write and the crowd receives."""
    latencies: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        with server.client(prober.token) as client:
            while not stop.is_set():
                started = time.perf_counter()
                assert client.get("/event/type").status_code == 200
                latencies.append(time.perf_counter() - started)
                time.sleep(0.01)

    prober_thread = threading.Thread(target=probe)
    prober_thread.start()
    try:
        time.sleep(0.3)
        for writer in writers:
            with server.client(writer.token) as client:
                for _ in range(EVENTS // 100):
                    batch = [_event(writer.organisation_id)] * 100
                    assert client.post("/event", json=batch).status_code == 201
        deadline = time.monotonic() + DEADLINE
        while until is not None and until.received < expected:
            assert time.monotonic() < deadline, f"{until.received} of {expected} arrived"
            time.sleep(0.05)
        time.sleep(0.5)  # the feed's next ticks
    finally:
        stop.set()
        prober_thread.join(DEADLINE)
    assert latencies
    return max(latencies)


def test_one_tenants_streams_do_not_slow_another_tenant(
    crowded: HeraldServer, figures: Figures
) -> None:
    """B's slowest request while A writes, or B writes, with and without A's streams open:
    idle (B's events are not theirs) and busy (each receives all of A's events)."""
    a, b = make_tenant(crowded, "Crowd Co"), make_tenant(crowded, "Bystander Co")
    _worst_request(crowded, b, [a, b], None, 0)  # warm-up: first requests, caches
    baseline = {"a": _worst_request(crowded, b, [a], None, 0)}
    baseline["b"] = _worst_request(crowded, b, [b], None, 0)
    crowd = Crowd(crowded, a.token, STREAMS)
    try:
        idle = _worst_request(crowded, b, [b], crowd, 0)
        busy = _worst_request(crowded, b, [a], crowd, STREAMS * EVENTS)
    finally:
        crowd.close()
    figures.add("streams.idle_streams_of_another_tenant", STREAMS)
    figures.add("streams.events_fanned_out", crowd.received)
    figures.note(
        "streams.worst_request_ms",
        f"B writes: {baseline['b'] * 1000:.0f} alone, {idle * 1000:.0f} beside {STREAMS} "
        f"idle streams of A; A writes: {baseline['a'] * 1000:.0f} alone, {busy * 1000:.0f} "
        f"while its {STREAMS} streams receive {EVENTS} events each",
    )
    assert crowd.received == STREAMS * EVENTS
    assert idle < WORST_RATIO * baseline["b"], (idle, baseline)
    assert busy < WORST_RATIO * baseline["a"], (busy, baseline)


def test_streams_beyond_the_caps_are_refused_and_others_are_not(
    tmp_path: Path, figures: Figures
) -> None:
    """Opened as fast as possible: exactly the cap is admitted; other tenants keep theirs."""
    env = {"HERALD_STREAM_MAX_PER_TOKEN": "5", "HERALD_STREAM_MAX_PER_ORGANISATION": "8"}
    server = start_server(tmp_path / "herald", env=env)
    try:
        greedy = make_tenant(server, "Greedy Co", "event:read")
        second = server.create_token(greedy.organisation_id, "event:read")
        other = make_tenant(server, "Other Co", "event:read")
        crowd = Crowd(server, greedy.token, 0)
        try:
            first_token = [crowd.open(server, greedy.token) for _ in range(20)]
            second_token = [crowd.open(server, second) for _ in range(20)]
            others = [crowd.open(server, other.token) for _ in range(5)]
        finally:
            crowd.close()
        figures.add("streams.refused_beyond_caps", crowd.refused)
        assert sum(first_token) == 5  # the per-token cap
        assert sum(second_token) == 3  # what the per-organisation cap leaves
        assert all(others)
    finally:
        server.stop()
