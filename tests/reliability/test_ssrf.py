"""SSRF: handler URLs that point inside are refused, by form, by address, on redirect and
on DNS rebinding."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from herald.delivery import targets
from herald.delivery.targets import GuardedBackend, TargetRefused
from herald.delivery.webhook import WebhookSender
from tests.delivery.receiver import receiving
from tests.reliability.conftest import Tenant, make_tenant
from tests.reliability.figures import Figures
from tests.support.inproc import InProcessHerald, start_in_process

REFUSED_URLS = [
    "http://127.0.0.1/hook",
    "http://127.1/hook",
    "http://2130706433/hook",  # 127.0.0.1 as one decimal number
    "http://0x7f000001/hook",  # ... in hex
    "http://017700000001/hook",  # ... in octal
    "http://localhost:8080/hook",
    "http://0.0.0.0/hook",
    "http://10.0.0.1/hook",
    "http://172.16.0.1/hook",
    "http://192.168.1.1/hook",
    "http://100.64.0.1/hook",  # carrier-grade NAT
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://[::1]/hook",
    "http://[::]/hook",
    "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped
    "http://[::ffff:7f00:1]/hook",
    "http://[::127.0.0.1]/hook",  # IPv4-compatible
    "http://[::ffff:0:7f00:1]/hook",  # SIIT IPv4-translated
    "http://[64:ff9b::7f00:1]/hook",  # NAT64 of loopback
    "http://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 of the metadata address
    "http://[2002:7f00:1::]/hook",  # 6to4 of loopback
    "http://[fe80::1]/hook",
    "http://[fc00::1]/hook",
    "http://[ff02::1]/hook",
    "file:///etc/passwd",
    "gopher://127.0.0.1:25/",
    "ftp://example.com/",
    "http://user:secret@example.com/hook",
    "http:///hook",
    "http://example.com:99999/hook",
]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[InProcessHerald, Tenant]]:
    """A server that refuses private targets, as production runs."""
    server = start_in_process(tmp_path_factory.mktemp("ssrf") / "herald")
    try:
        yield server, make_tenant(server, "Attacker Co")
    finally:
        server.stop()


def test_handler_urls_pointing_inside_are_refused(
    guarded: tuple[InProcessHerald, Tenant], figures: Figures
) -> None:
    server, tenant = guarded
    accepted: list[str] = []
    with server.client(tenant.token) as client:
        for url in REFUSED_URLS:
            response = client.post("/event_handler", json={"name": "x", "url": url})
            if response.status_code != 422:
                accepted.append(f"{url}: {response.status_code}")
                continue
            assert response.json()["errors"][0]["field"] == "url"
            figures.add("ssrf.forms_refused")
        public = {"name": "ok", "url": "http://93.184.215.14/hook", "enabled": False}
        handler = client.post("/event_handler", json=public)  # disabled: nothing leaves
        assert handler.status_code == 201, handler.text  # a public address is fine
        moved = client.patch(
            f"/event_handler/{handler.json()['id']}", json={"url": "http://[::1]/"}
        )
        assert moved.status_code == 422  # and a change of URL is checked too
        figures.add("ssrf.forms_refused")
    assert accepted == []


def test_dns_rebinding_to_loopback_is_refused_at_connect(
    monkeypatch: pytest.MonkeyPatch, figures: Figures
) -> None:
    answers = iter(["93.184.215.14", "127.0.0.1"])  # public when checked, loopback later

    async def rebinding(host: str, port: int, **_: Any) -> list[Any]:
        address = next(answers)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(anyio, "getaddrinfo", rebinding)  # what targets.resolve calls

    async def attempt() -> None:
        await targets.check_target("http://rebind.example/hook", allow_private=False)
        with pytest.raises(TargetRefused, match="loopback"):
            await GuardedBackend(allow_private=False).connect_tcp("rebind.example", 80)

    anyio.run(attempt)
    figures.add("ssrf.forms_refused")


def test_redirects_are_not_followed(figures: Figures) -> None:
    with receiving() as inside, receiving(lambda _: (302, {"Location": inside.url})) as outside:

        async def send() -> str:
            sender = WebhookSender(allow_private=True)  # loopback stands in for the internet
            try:
                result = await sender.send(outside.url, b"[]", {"content-type": "application/json"})
            finally:
                await sender.aclose()
            return result.outcome

        assert anyio.run(send) == "rejected"
        assert len(outside.requests) == 1
        assert inside.requests == []  # the Location was never fetched
    figures.add("ssrf.forms_refused")
