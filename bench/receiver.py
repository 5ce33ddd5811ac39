"""A minimal webhook receiver for the delivery benchmark, run as its own process.

``python -m bench.receiver PORT`` answers every POST with ``200``, counts the events it
carries (a JSON array counts its items) and, for events whose ``detail.sent_ms`` says when
the producer sent them, how long they took to arrive. ``GET /stats`` reports both and
``GET /reset`` clears them. Plain asyncio and one parse per request: cheap enough not to be
what is measured.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import orjson

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


class Tally:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.events = 0
        self.requests = 0
        self.latencies_ms: list[float] = []

    def add(self, body: bytes) -> None:
        now = time.time() * 1000
        document = orjson.loads(body)
        records: list[Any] = document if isinstance(document, list) else [document]
        self.requests += 1
        self.events += len(records)
        for record in records:
            detail = record.get("detail") if isinstance(record, dict) else None
            if isinstance(detail, dict) and "sent_ms" in detail:
                self.latencies_ms.append(now - detail["sent_ms"])

    def report(self) -> bytes:
        body = orjson.dumps(
            {"events": self.events, "requests": self.requests, "latencies_ms": self.latencies_ms}
        )
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
        return head.encode() + b"\r\n\r\n" + body


async def _serve(tally: Tally, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            length = 0
            for line in lines:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            body = await reader.readexactly(length) if length else b""
            method, path, _ = request_line.split(" ", 2)
            if method == "POST":
                tally.add(body)
                writer.write(_OK)
            elif path == "/stats":
                writer.write(tally.report())
            else:
                tally.reset()
                writer.write(_OK)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    tally = Tally()
    server = await asyncio.start_server(
        lambda r, w: _serve(tally, r, w), "127.0.0.1", port, limit=16 * 1024 * 1024
    )
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
