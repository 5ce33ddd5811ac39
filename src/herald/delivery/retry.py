"""When to try again: a pure policy over the number of failures, tested without a clock."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

MAX_RETRY_AFTER = 86_400.0
"""Longest wait a receiver's Retry-After can ask for (seconds); longer ones are cut to it."""

DEFAULT_SCHEDULE = (5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0, 10800.0, 21600.0, 43200.0, 86400.0)
"""Seconds to wait after the 1st, 2nd... failure; the last one repeats (about 24 h)."""

RETRYABLE_STATUSES = frozenset({408, 429})


def is_retryable(status: int) -> bool:
    """Whether an answer means "try again later" rather than "refused" (other 4xx, 3xx)."""
    return status in RETRYABLE_STATUSES or status >= 500


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, honouring Retry-After, bounded by a retention."""

    schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    jitter: float = 0.1  # each delay is stretched or shrunk by up to this fraction
    max_retry_after: float = MAX_RETRY_AFTER

    def next_attempt(
        self,
        attempt: int,
        now: datetime,
        retry_after: float | None = None,
        *,
        failing_since: datetime | None = None,
        retention: timedelta | None = None,
        rand: Callable[[], float] = random.random,
    ) -> datetime | None:
        """When to try after the ``attempt``-th consecutive failure (1-based).

        None means give up: the failures have lasted longer than ``retention``.
        """
        if retention is not None and failing_since is not None and now - failing_since >= retention:
            return None
        delay = self.schedule[min(max(attempt, 1), len(self.schedule)) - 1]
        delay *= 1 + self.jitter * (2 * rand() - 1)
        if retry_after is not None and retry_after == retry_after:  # not NaN
            delay = max(delay, min(retry_after, self.max_retry_after))
        return now + timedelta(seconds=max(delay, 0.0))


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), at most
    ``MAX_RETRY_AFTER``; None for a missing or unreadable one (a receiver's header is
    hostile input: ``²`` is a digit to ``str.isdigit``, a year can overflow)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        moment = parsedate_to_datetime(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = (moment - now).total_seconds()
    except (TypeError, ValueError, OverflowError):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)
