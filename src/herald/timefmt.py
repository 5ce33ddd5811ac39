"""Timestamps as Herald writes them: ISO 8601, UTC, milliseconds, ``Z``.

Herald stores and serves only the years 1970-9999 (after conversion to UTC): every
timestamp it accepts, whatever the route, is checked here, so what it writes it can read.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from functools import lru_cache

_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EARLIEST = _UNIX_EPOCH
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
RANGE_TEXT = "between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z"


def now_ms() -> int:
    """Current Unix time in milliseconds."""
    return time.time_ns() // 1_000_000


def to_ms(moment: datetime) -> int:
    """Unix milliseconds of an aware datetime (a naive one is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _UNIX_EPOCH) // timedelta(milliseconds=1)


def format_ms(ms: int) -> str:
    """``2021-10-27T08:38:02.000Z`` for a Unix millisecond time (always a four-digit year)."""
    seconds, millis = divmod(ms, 1000)
    return f"{_second(seconds)}.{millis:03d}Z"


@lru_cache(maxsize=4096)
def _second(seconds: int) -> str:
    """``2021-10-27T08:38:02``: the events of a batch mostly share their seconds."""
    moment = _UNIX_EPOCH + timedelta(seconds=seconds)
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )


EXAMPLE_TIME = "2026-11-01T00:00:00Z"


def in_range(moment: datetime) -> datetime:
    """``moment`` in UTC if Herald can store and serve it; ``ValueError`` otherwise."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # year 1 at +00:09, year 9999 at -23:59: out of datetime's range
        raise ValueError(f"must be {RANGE_TEXT}") from None
    if not EARLIEST <= moment <= LATEST:
        raise ValueError(f"must be {RANGE_TEXT}")
    return moment


def parse_timestamp(text: str) -> datetime:
    """Parse the ISO 8601 forms providers send (``Z``, ``+0000``, ``+00:00``, no zone = UTC).

    The result is in UTC and within the years Herald serves; ``ValueError`` if not.
    """
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    elif len(value) > 5 and value[-5] in "+-" and value[-4:].isdigit() and "T" in value:
        value = value[:-2] + ":" + value[-2:]
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"must be an ISO 8601 time such as {EXAMPLE_TIME}") from None
    return in_range(moment)
