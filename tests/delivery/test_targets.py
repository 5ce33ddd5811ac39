"""Where webhooks may go: the SSRF guard, at creation and at connect time."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from herald.delivery.targets import TargetRefused, address_refusal, check_target, url_refusal
from herald.delivery.webhook import WebhookSender
from tests.delivery.receiver import receiving


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd00:ec2::254",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "2002:7f00:1::",
    ],
)
def test_private_loopback_link_local_and_metadata_addresses_are_refused(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is not None


def test_public_addresses_pass() -> None:
    assert address_refusal(ipaddress.ip_address("93.184.216.34")) is None
    assert address_refusal(ipaddress.ip_address("2606:4700::1111")) is None


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "file:///etc/passwd", "http:///x", "http://u:p@example.com/"]
)
def test_only_plain_http_urls(url: str) -> None:
    assert url_refusal(url) is not None


def test_creation_check_resolves_names() -> None:
    with pytest.raises(TargetRefused, match="loopback"):
        asyncio.run(check_target("http://localhost:9/hook", allow_private=False))
    asyncio.run(check_target("http://localhost:9/hook", allow_private=True))


def test_connect_time_guard_refuses_before_any_byte_is_sent() -> None:
    async def send(url: str, allow_private: bool) -> str | None:
        sender = WebhookSender(timeout=5, allow_private=allow_private)
        try:
            return (await sender.send(url, b"{}", {})).error
        finally:
            await sender.aclose()

    with receiving() as receiver:
        url = f"http://localhost:{receiver.port}/hook"  # a name: only DNS says it is loopback
        error = asyncio.run(send(url, allow_private=False))
        assert error is not None and error.startswith("target refused")
        assert receiver.requests == []
        assert asyncio.run(send(url, allow_private=True)) is None
        assert len(receiver.requests) == 1


def test_redirects_are_not_followed() -> None:
    async def send(url: str) -> int | None:
        sender = WebhookSender(timeout=5, allow_private=True)
        try:
            result = await sender.send(url, b"{}", {})
            assert result.outcome == "rejected"
            return result.status
        finally:
            await sender.aclose()

    with receiving(lambda _: (307, {"Location": "http://127.0.0.1:9/"})) as receiver:
        assert asyncio.run(send(receiver.url)) == 307
        assert len(receiver.requests) == 1
