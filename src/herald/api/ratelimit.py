"""Per-token rate limiting: a token bucket per bearer credential, 429 with ``Retry-After``.

Requests without credentials share a bucket per client address, so guessing tokens is
limited too. Only the API (``/api/v1``) is limited; health, readiness and metrics are not.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from herald.api.problems import Problem, problem_response
from herald.metrics import RATE_LIMITED

LIMITED_PREFIX = "/api/v1"
MAX_BUCKETS = 100_000  # least recently used keys beyond this are forgotten (they refill anyway)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """Token buckets by key: ``rate`` per second, holding at most ``burst``."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, key: str, now: float) -> float:
        """Take one request from ``key``'s bucket: 0 if allowed, else seconds until one is."""
        bucket = self._buckets.pop(key, None) or _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        self._buckets[key] = bucket
        if len(self._buckets) > MAX_BUCKETS:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate


def _key(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return "t:" + hashlib.sha256(value).hexdigest()  # the key never holds the secret
    client = scope.get("client")
    return "a:" + (client[0] if client else "")


class RateLimit:
    """ASGI middleware answering 429 problem+json once a credential's bucket is empty."""

    def __init__(self, app: ASGIApp, per_second: float, burst: int) -> None:
        self.app = app
        self.buckets = TokenBuckets(per_second, burst) if per_second > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.buckets is None
            or scope["type"] != "http"
            or not scope["path"].startswith(LIMITED_PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        wait = self.buckets.take(_key(scope), time.monotonic())
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        RATE_LIMITED.inc()
        retry_after = str(max(1, math.ceil(wait)))
        problem = Problem(
            429,
            "Too many requests",
            f"rate limit of {self.buckets.rate:g} requests per second exceeded; "
            f"retry after {retry_after} s",
            headers={"Retry-After": retry_after},
        )
        await problem_response(problem)(scope, receive, send)
