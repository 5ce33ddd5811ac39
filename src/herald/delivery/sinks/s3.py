"""The S3 sink: each batch one gzip NDJSON object, counted once the store answered 200.

Objects are keyed ``{organisation_id}/{yyyy}/{mm}/{dd}/{hh}/{first_id}-{last_id}.ndjson.gz``
by the first event's receipt time (UTC), so a batch sent again overwrites its own object.
Lines are the native records, or CloudEvents documents for the ``cloudevents`` format.
Without credentials the requests go unsigned: a tenant's handler never borrows the
server's own AWS identity.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import ipaddress
import socket
from datetime import UTC
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import botocore
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from aiohttp.abc import AbstractResolver, ResolveResult

from herald.delivery.formats import cloudevent
from herald.delivery.sinks.base import BrokerSink, Outgoing, SinkConfig
from herald.timefmt import parse_timestamp


@functools.cache
def _session() -> AioSession:
    """One session for every S3 handler: it loads botocore's service models once (a new
    session per connection took up to a second)."""
    return get_session()


class S3Sink(BrokerSink):
    def __init__(self, config: SinkConfig) -> None:
        super().__init__(config)
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None

    async def _connect(self, host: str, port: int) -> None:
        # The endpoint keeps the URL's name (the Host header, the certificate's name);
        # its connections go to ``host``, the address the target guard checked.
        parts = urlsplit(self.config.url)
        name = self.config.host
        netloc = f"[{name}]:{port}" if ":" in name else f"{name}:{port}"
        endpoint = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        credentials = self.config.credentials
        signed = "access_key_id" in credentials
        config = AioConfig(
            connect_timeout=self.config.timeout,
            read_timeout=self.config.timeout,
            retries={"total_max_attempts": 1},  # the worker retries, with its backoff
            s3={"addressing_style": "path"},
            signature_version=None if signed else botocore.UNSIGNED,
            connector_args={"resolver": PinnedResolver(host), "use_dns_cache": False},
        )
        self._stack = contextlib.AsyncExitStack()
        self._client = await self._stack.enter_async_context(
            _session().create_client(
                "s3",
                endpoint_url=endpoint,
                region_name=self.config.settings["region"],
                aws_access_key_id=credentials.get("access_key_id", "unsigned"),
                aws_secret_access_key=credentials.get("secret_access_key", "unsigned"),
                verify=self.config.settings.get("tls_verify", True),
                config=config,
            )
        )

    async def _publish(self, out: Outgoing) -> str:
        key, body = await asyncio.to_thread(object_of, out)  # gzip: off the event loop
        reply = await self._client.put_object(
            Bucket=self.config.settings["bucket"],
            Key=key,
            Body=body,
            ContentType="application/x-ndjson",
            ContentEncoding="gzip",
        )
        status = reply["ResponseMetadata"]["HTTPStatusCode"]
        if status != 200:
            raise RuntimeError(f"HTTP {status} for the PUT of {key}")
        return f"HTTP 200 for {key}"

    async def _disconnect(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()


class PinnedResolver(AbstractResolver):
    """aiohttp's resolver answering one address, the one checked, for the endpoint's name."""

    def __init__(self, address: str) -> None:
        self._address = address
        version = ipaddress.ip_address(address.split("%", 1)[0]).version
        self._family = socket.AF_INET6 if version == 6 else socket.AF_INET

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=self._address,
                port=port,
                family=self._family,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        """Nothing to close."""


def object_of(out: Outgoing) -> tuple[str, bytes]:
    """The key and the gzip NDJSON body of a batch's object."""
    items = out.items
    first = items[0].envelope
    received = first.received or first.timestamp
    try:
        at = parse_timestamp(received) if isinstance(received, str) else out.now
    except (ValueError, OverflowError):
        at = out.now
    at = at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
    owner = first.organisation if isinstance(first.organisation, dict) else {}
    organisation = owner.get("id", out.handler.organisation_id)
    key = f"{organisation}/{at:%Y/%m/%d/%H}/{items[0].event_id}-{items[-1].event_id}.ndjson.gz"
    if out.handler.spec.format == "cloudevents":
        lines = b"".join(cloudevent(item) + b"\n" for item in items)
    else:
        lines = b"".join(item.body + b"\n" for item in items)
    return key, gzip.compress(lines, compresslevel=6, mtime=0)
