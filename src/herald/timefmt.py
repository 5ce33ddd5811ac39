"""Timestamps as Herald writes them: ISO 8601, UTC, milliseconds, ``Z``."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_ms() -> int:
    """Current Unix time in milliseconds."""
    return time.time_ns() // 1_000_000


def to_ms(moment: datetime) -> int:
    """Unix milliseconds of an aware datetime (a naive one is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _UNIX_EPOCH) // timedelta(milliseconds=1)


def format_ms(ms: int) -> str:
    """``2021-10-27T08:38:02.000Z`` for a Unix millisecond time."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_timestamp(text: str) -> datetime:
    """Parse the ISO 8601 forms providers send (``Z``, ``+0000``, ``+00:00``, no zone = UTC)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    elif len(value) > 5 and value[-5] in "+-" and value[-4:].isdigit() and "T" in value:
        value = value[:-2] + ":" + value[-2:]
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
