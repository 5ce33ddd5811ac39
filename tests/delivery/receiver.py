"""A real webhook receiver on loopback that records every request, for delivery tests."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from tests.support.herald import Herald
from tests.support.inproc import InProcessHerald, start_in_process
from tests.support.server import HeraldServer, start_server
from tests.support.waiting import wait_until

DELIVERY_ENV = {
    "HERALD_ALLOW_PRIVATE_TARGETS": "true",
    "HERALD_DELIVERY_RETRY_SCHEDULE": "0.1,0.2,0.3",
    "HERALD_DELIVERY_LEASE_SECONDS": "2",
    "HERALD_DELIVERY_POLL_SECONDS": "0.05",
}
"""What delivery tests run ``herald serve`` with: loopback targets, short retries, leases."""


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


Responder = Callable[[Received], tuple[int, dict[str, str]]]


def always(status: int) -> Responder:
    return lambda _: (status, {})


@dataclass
class Receiver:
    """Answers each request with ``responder`` (200 by default) and keeps what it got."""

    responder: Responder = field(default_factory=lambda: always(200))
    requests: list[Received] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def delivered(self) -> list[Received]:
        """The requests answered 2xx, in arrival order."""
        with self._lock:
            return [r for r, s in zip(self.requests, self.answered, strict=True) if s < 300]

    def delivered_ids(self) -> list[int]:
        """Event ids of every 2xx-answered request, flattening batches and NDJSON."""
        ids: list[int] = []
        for request in self.delivered():
            ids.extend(event_ids(request))
        return ids

    def wait_for(self, check: Callable[[], bool], timeout: float = 20) -> None:
        wait_until(check, timeout, lambda: f"received {len(self.requests)} requests")


def event_ids(request: Received) -> list[int]:
    """The Herald event ids a request carried, whatever its format."""
    content_type = request.headers.get("content-type", "")
    if "ndjson" in content_type:
        documents = [orjson.loads(line) for line in request.body.splitlines() if line]
    else:
        document = request.json()
        documents = document if isinstance(document, list) else [document]
    return [int(d["data"]["id"]) if "specversion" in d else int(d["id"]) for d in documents]


@contextmanager
def receiving(responder: Responder | None = None) -> Iterator[Receiver]:
    """A receiver serving on a free loopback port for the duration of the block."""
    receiver = Receiver(responder) if responder else Receiver()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            body = self.rfile.read(length)
            if len(body) < length:  # the sender died mid-request (a SIGKILL test): not received
                self.close_connection = True
                return
            got = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            status, headers = receiver.responder(got)
            with receiver._lock:
                receiver.requests.append(got)
                receiver.answered.append(status)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def start_delivery_server(
    workdir: Path, database_url: str | None = None, **env: str
) -> HeraldServer:
    """``herald serve`` with the delivery test settings (SQLite unless ``database_url``)."""
    return start_server(workdir, env={**DELIVERY_ENV, **env}, database_url=database_url)


def start_delivery_in_process(
    workdir: Path, database_url: str | None = None, **env: str
) -> InProcessHerald:
    """The app in this process with the delivery test settings (see ``start_delivery_server``)."""
    return start_in_process(workdir, env={**DELIVERY_ENV, **env}, database_url=database_url)


def tenant(server: Herald, name: str = "Acme IoT") -> tuple[int, str]:
    """A new organisation and a token that manages its handlers and writes its events."""
    organisation = server.create_org(name)
    token = server.create_token(
        organisation, "handler:manage", "handler:read", "event:create", "event:read"
    )
    return organisation, token


TRICKLED_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


@dataclass
class Trickler:
    """A hostile receiver: it reads a request, then answers one byte every ``interval``
    seconds (each read of the sender gets a byte in time: only a deadline on the whole
    request ends it). Counts requests, connections open now and at most, and when each
    connection ended."""

    interval: float
    port: int = 0
    requests: int = 0
    open: int = 0
    peak: int = 0
    ended: list[float] = field(default_factory=list)  # time.monotonic() of each close
    spans: list[tuple[float, float]] = field(default_factory=list)  # each connection's

    def held(self, grace: float = 0.1) -> int:
        """The most connections open at once, counting a connection only from ``grace`` s
        after it opened: a sender that closes one and opens the next is seen here in either
        order (the close and the new connection reach this loop a few ms apart)."""
        marks = [(start + grace, 1) for start, end in self.spans if end > start + grace]
        marks += [(end, -1) for start, end in self.spans if end > start + grace]
        most = now = 0
        for _, step in sorted(marks):  # at a tie, a close (-1) counts before an open
            now += step
            most = max(most, now)
        return max(most, self.open)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slow"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        opened = time.monotonic()
        self.open += 1
        self.peak = max(self.peak, self.open)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            await reader.readexactly(length)
            self.requests += 1
            hung_up = asyncio.ensure_future(reader.read(1))  # b"" once the sender closes
            for byte in TRICKLED_ANSWER:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.wait({hung_up}, timeout=self.interval)
                if hung_up.done():
                    break
            hung_up.cancel()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the sender gave up
        finally:
            self.open -= 1
            self.ended.append(time.monotonic())
            self.spans.append((opened, self.ended[-1]))
            writer.close()


@contextmanager
def trickling(interval: float = 0.25) -> Iterator[Trickler]:
    """A ``Trickler`` on a free loopback port, served by an event loop of its own thread."""
    trickler = Trickler(interval)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    server: asyncio.Server | None = None

    async def start() -> None:
        nonlocal server
        server = await asyncio.start_server(trickler.serve, "127.0.0.1", 0)
        trickler.port = server.sockets[0].getsockname()[1]
        started.set()

    def run() -> None:
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(10)

    async def stop() -> None:
        if server is not None:
            server.close()
        serving = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in serving:
            task.cancel()
        await asyncio.gather(*serving, return_exceptions=True)

    try:
        yield trickler
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
