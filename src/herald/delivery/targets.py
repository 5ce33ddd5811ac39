"""Where webhooks may go: http(s) only, and never to loopback, private, link-local or cloud
metadata addresses unless the operator allows them.

The check runs when a handler is created and again at every connect, on the addresses DNS
gives then, and the connection goes to the address that was checked, so a name that
resolves elsewhere later (DNS rebinding) cannot slip through.
"""

from __future__ import annotations

import ipaddress
import socket
import typing
from urllib.parse import urlsplit

import anyio
import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


_EMBEDDING_IPV4 = tuple(
    ipaddress.ip_network(net)
    for net in ("64:ff9b::/96", "64:ff9b:1::/48", "::ffff:0:0:0/96", "::/96")
)
"""IPv6 forms that carry an IPv4 address in their last 32 bits: NAT64, SIIT, v4-compatible."""


ALLOW_PRIVATE_SETTING = "HERALD_ALLOW_PRIVATE_TARGETS"
"""The setting that lets handlers deliver to loopback and private addresses."""


class TargetRefused(Exception):
    """The target's URL or address is not allowed."""


def address_refusal(address: IPAddress) -> str | None:
    """Why an address may not be a target, or None if it is a public one."""
    mapped = getattr(address, "ipv4_mapped", None) or getattr(address, "sixtofour", None)
    if mapped is not None:
        return address_refusal(mapped)
    if address.is_loopback:
        return "loopback address"
    if isinstance(address, ipaddress.IPv6Address) and any(
        address in net for net in _EMBEDDING_IPV4
    ):  # a NAT64 gateway would connect to the embedded IPv4 address: judge that one
        return address_refusal(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.is_link_local:
        return "link-local address (cloud metadata lives here)"
    if address.is_private:
        return "private address"
    if not address.is_global or address.is_multicast:
        return "not a public address"
    return None


def url_refusal(url: str) -> str | None:
    """Why a URL cannot be a webhook target, judged on its form alone."""
    if any(char == " " or not char.isprintable() for char in url):  # CR LF split headers
        return "the URL must not hold spaces or control characters (percent-encode them)"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
        httpx.URL(url)  # what the sender will parse: refused now rather than at every send
    except (ValueError, httpx.InvalidURL) as exc:
        return f"malformed URL: {exc}"
    if parts.scheme not in ("http", "https"):
        return "only http and https URLs are allowed"
    if not parts.hostname:
        return "the URL needs a host"
    if parts.username or parts.password:
        return "credentials in the URL are not allowed; put them in the path or a query"
    return None


async def resolve(host: str, port: int, allow_private: bool) -> list[str]:
    """The addresses of ``host`` that may be connected to; TargetRefused if none."""
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise TargetRefused(f"cannot resolve {host}: {exc}") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if allow_private:
        return addresses
    allowed, reasons = [], []
    for text in addresses:
        reason = address_refusal(ipaddress.ip_address(text.split("%", 1)[0]))
        if reason is None:
            allowed.append(text)
        else:
            reasons.append(f"{text}: {reason}")
    if reasons:  # one bad answer is enough to refuse: it may be the one used next time
        raise TargetRefused(
            f"{host} resolves to a refused address ({'; '.join(reasons)}); to deliver to "
            f"private targets, start Herald with {ALLOW_PRIVATE_SETTING}=true"
        )
    return allowed


async def check_target(url: str, allow_private: bool) -> None:
    """Refuse a URL by its form or by where its host resolves now."""
    reason = url_refusal(url)
    if reason:
        raise TargetRefused(reason)
    parts = urlsplit(url)
    assert parts.hostname is not None
    await resolve(parts.hostname, parts.port or 443, allow_private)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, resolving and checking the host before each connect."""

    def __init__(self, allow_private: bool) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow_private = allow_private

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await resolve(host, port, self._allow_private)
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
        raise error or httpcore.ConnectError(f"no address for {host}")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise TargetRefused("unix sockets are not webhook targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
