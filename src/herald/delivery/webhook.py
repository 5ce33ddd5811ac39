"""The webhook sink: POST over pooled keep-alive connections, no redirects, bounded reads,
and a deadline on the whole request (a receiver trickling its answer cannot stretch it)."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpcore
import httpx

from herald.delivery.retry import is_retryable, parse_retry_after
from herald.delivery.targets import GuardedBackend, TargetRefused, url_refusal

log = logging.getLogger("herald.delivery")
MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = "Herald-Webhooks/1"


@dataclass(frozen=True, slots=True)
class SendResult:
    """How one request went: the status if any answer came, else the error. A broker sink
    has no status: ``acked`` says the broker acknowledged all, ``detail`` what it said."""

    status: int | None
    error: str | None
    latency_ms: int
    retry_after: float | None = None
    acked: bool = False
    detail: str | None = None

    @property
    def delivered(self) -> bool:
        return self.acked or (self.status is not None and 200 <= self.status < 300)

    @property
    def gone(self) -> bool:
        """The receiver answered 410 Gone: it wants no more requests (Standard Webhooks)."""
        return self.status == 410

    @property
    def outcome(self) -> str:
        """``delivered``; ``retry`` (no answer, 408, 429, 5xx); ``rejected`` (any other)."""
        if self.delivered:
            return "delivered"
        if self.status is None or is_retryable(self.status):
            return "retry"
        return "rejected"


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a pool whose every connect goes through the target guard."""

    def __init__(self, allow_private: bool, limits: httpx.Limits) -> None:
        super().__init__(limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl.create_default_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allow_private),
        )


class WebhookSender:
    """One shared client for every handler of a worker."""

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        allow_private: bool = False,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        max_connections: int = 200,
    ) -> None:
        limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max(max_connections // 2, 1),
        )
        self._timeout = timeout
        self._max_response_bytes = max_response_bytes
        self._client = httpx.AsyncClient(
            transport=_GuardedTransport(allow_private, limits),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        )

    async def send(
        self, url: str, body: bytes, headers: dict[str, str], timeout: float | None = None
    ) -> SendResult:
        """POST ``body`` within the timeout (``timeout``: the handler's own, else the
        sender's), waiting for a pooled connection included; never raises for what the
        network, the receiver or the URL does: every failure is a result with its error."""
        started = time.perf_counter()
        reason = url_refusal(url)
        if reason:
            return SendResult(None, f"target refused: {reason}", 0)
        limit = self._timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                return await self._post(url, body, headers, started, limit)
        except TargetRefused as exc:
            return SendResult(None, f"target refused: {exc}", _ms_since(started))
        except (TimeoutError, httpx.TimeoutException):
            return SendResult(None, "timeout", _ms_since(started))
        except httpx.HTTPError as exc:
            return SendResult(None, f"{type(exc).__name__}: {exc}"[:500], _ms_since(started))
        except Exception as exc:  # httpx.InvalidURL and the like: an attempt that failed
            # the type only: the message may hold the URL, and a URL may hold a credential
            log.warning("delivery: a request failed unexpectedly: %s", type(exc).__name__)
            return SendResult(None, f"{type(exc).__name__}: {exc}"[:500], _ms_since(started))

    async def _post(
        self, url: str, body: bytes, headers: dict[str, str], started: float, limit: float
    ) -> SendResult:
        timeout = httpx.Timeout(limit, connect=min(limit, 5.0))
        request = self._client.stream("POST", url, content=body, headers=headers, timeout=timeout)
        async with request as reply:
            read = 0
            async for chunk in reply.aiter_raw():  # drain a little for keep-alive, no more
                read += len(chunk)
                if read >= self._max_response_bytes:
                    break
            status = reply.status_code
            retry_after = parse_retry_after(reply.headers.get("retry-after"), datetime.now(UTC))
        error = None if 200 <= status < 300 else f"HTTP {status}"
        return SendResult(status, error, _ms_since(started), retry_after)

    async def aclose(self) -> None:
        await self._client.aclose()


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
