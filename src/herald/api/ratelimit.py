"""Per-token rate limiting: a token bucket per authenticated token, 429 with ``Retry-After``.

The bucket is the token's own (its id), whatever the spelling of the ``Authorization``
header and whichever of its JWTs is sent. Requests that fail to authenticate (no
credential, an unknown or forged one) share a bucket per client address, so guessing
tokens is limited too. Only authenticated API routes and ``/authenticate`` are limited;
health, readiness and metrics are not.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass

from starlette.requests import HTTPConnection

from herald.api.problems import Problem
from herald.metrics import RATE_LIMITED

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


def client_key(connection: HTTPConnection) -> str:
    """The bucket of requests that did not authenticate: their client address."""
    return "a:" + (connection.client.host if connection.client else "")


def token_key(token_id: int) -> str:
    """The bucket of an authenticated token (the key never holds the secret)."""
    return f"t:{token_id}"


class RateLimit:
    """Token buckets by key; ``take`` raises a 429 problem once a key's bucket is empty."""

    def __init__(self, per_second: float, burst: int) -> None:
        self.buckets = TokenBuckets(per_second, burst) if per_second > 0 else None

    def take(self, key: str) -> None:
        if self.buckets is None:
            return
        wait = self.buckets.take(key, time.monotonic())
        if wait <= 0:
            return
        RATE_LIMITED.inc()
        retry_after = str(max(1, math.ceil(wait)))
        raise Problem(
            429,
            "Too many requests",
            f"rate limit of {self.buckets.rate:g} requests per second exceeded; "
            f"retry after {retry_after} s",
            headers={"Retry-After": retry_after},
        )


def rate_limit(connection: HTTPConnection) -> RateLimit:
    """The app's rate limit (none before the app set one: nothing is limited)."""
    limit: RateLimit | None = getattr(connection.app.state, "rate_limit", None)
    return limit or RateLimit(0, 1)
