"""``herald serve``: whose forwarding headers are believed (issue #28, defect 5); a taken
port."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from herald.cli.common import listen
from herald.config import Settings
from tests.support.herald import HERALD
from tests.support.server import HeraldServer, start_server

LIMITED = {"HERALD_RATE_LIMIT_PER_SECOND": "0.05", "HERALD_RATE_LIMIT_BURST": "10"}


def _guesses(server: HeraldServer, forwarded_for: list[str]) -> list[int]:
    """Guessed tokens from this host, each request claiming the next forwarded address."""
    url = f"{server.url}/api/v1/event"
    return [
        httpx.get(
            url,
            headers={"Authorization": f"Bearer hrd_guess{i}", "X-Forwarded-For": address},
            timeout=30,
        ).status_code
        for i, address in enumerate(forwarded_for)
    ]


def test_a_loopback_client_cannot_pick_its_address_with_x_forwarded_for(tmp_path: Path) -> None:
    """Regression: uvicorn believed X-Forwarded-For from 127.0.0.1, so rotating it gave 40
    guesses without one 429. By default no proxy is trusted: the 11th guess is refused."""
    server = start_server(tmp_path / "herald", env=LIMITED)
    try:
        statuses = _guesses(server, [f"198.51.100.{i}" for i in range(1, 41)])
    finally:
        server.stop()
    assert statuses[:10] == [401] * 10
    assert set(statuses[10:]) == {429}


def test_a_trusted_proxy_forwards_its_clients_addresses(tmp_path: Path) -> None:
    """With HERALD_TRUSTED_PROXIES naming the proxy (here loopback), each forwarded client
    has a bucket of its own, and one client's guesses still meet the limit."""
    server = start_server(
        tmp_path / "herald", env={**LIMITED, "HERALD_TRUSTED_PROXIES": "127.0.0.0/8"}
    )
    try:
        rotating = _guesses(server, [f"198.51.100.{i}" for i in range(1, 41)])
        one_client = _guesses(server, ["203.0.113.7"] * 12)
    finally:
        server.stop()
    assert rotating == [401] * 40
    assert one_client[:10] == [401] * 10 and set(one_client[10:]) == {429}


def test_trusted_proxies_are_addresses_or_networks() -> None:
    settings = Settings(trusted_proxies=" 10.0.0.5, 10.1.2.3/16 ,::1")
    assert settings.trusted_proxy_list == ["10.0.0.5", "10.1.0.0/16", "::1"]
    assert Settings().trusted_proxy_list == []
    with pytest.raises(ValidationError, match=r"'proxy\.local' is not an IP address"):
        Settings(trusted_proxies="10.0.0.5,proxy.local")


def test_a_taken_port_fails_before_herald_says_it_runs(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        database = tmp_path / "herald.db"
        run = subprocess.run(
            [*HERALD, "serve", "--port", str(port), "--database", f"sqlite:///{database}"],
            cwd=tmp_path,
            env={**os.environ, "HERALD_DEMO": "false"},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use (another server "
        "uses it: stop it, or choose another port with --port)"
    ]
    assert run.stdout == ""  # no "Herald on http://...", no first-start token
    assert not database.exists()  # nothing was done before the port was had


def test_connections_to_the_listening_socket_send_without_delay() -> None:
    """The socket ``herald serve`` listens on gives connections with Nagle off, as uvicorn's
    own bind does: with Nagle on, each keep-alive answer written in two parts waited for the
    client's delayed ACK (~40 ms a request)."""
    sock = listen("127.0.0.1", 0)
    nodelay: list[int] = []

    async def serve_one() -> None:
        loop = asyncio.get_running_loop()
        accepted = asyncio.Event()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                conn = transport.get_extra_info("socket")
                nodelay.append(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()
                accepted.set()

        server = await loop.create_server(Probe, sock=sock)
        async with server:
            _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
            await asyncio.wait_for(accepted.wait(), 10)
            writer.close()

    asyncio.run(serve_one())
    assert nodelay and nodelay[0] != 0
