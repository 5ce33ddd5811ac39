"""A handler's delivery state as the API and the CLI show it."""

from __future__ import annotations

import contextlib
from typing import Any

import orjson

from herald.delivery.filters import handler_filter
from herald.handlers.types import Handler
from herald.store import Store
from herald.timefmt import format_ms, now_ms, parse_timestamp, to_ms

LAG_COUNT_LIMIT = 100_000
"""Events ``lag_events`` counts at most: a status read costs at most this many rows."""


def _time(ms: int | None) -> str | None:
    return format_ms(ms) if ms is not None else None


def handler_status(store: Store, handler: Handler) -> dict[str, Any]:
    """State (active, retrying, disabled and why), lag (in the events its filter selects),
    failures, next attempt, and where delivery runs (``serve`` in-process or a ``worker``)."""
    now = now_ms()
    if not handler.spec.enabled:
        state = "disabled"
    elif handler.failures:
        state = "retrying"
    else:
        state = "active"
    wanted = handler_filter(handler.spec.filter)
    lag_events = store.count_log(
        handler.organisation_id, handler.cursor_seq, wanted, LAG_COUNT_LIMIT
    )
    lag_seconds = 0.0
    if lag_events:
        first = store.first_in_log(handler.organisation_id, handler.cursor_seq, wanted)
        received = orjson.loads(first).get("received") if first else None
        with contextlib.suppress(ValueError, OverflowError):  # an odd date: lag unknown
            if isinstance(received, str):
                lag_seconds = max(now - to_ms(parse_timestamp(received)), 0) / 1000
    leased = handler.lease_until_ms is not None and handler.lease_until_ms > now
    owner = handler.owner if leased else None
    return {
        "id": handler.id,
        "state": state,
        "reason": handler.disabled_reason,
        "last_success": _time(handler.last_success_ms),
        "last_error": handler.last_error,
        "consecutive_failures": handler.failures,
        "failing_since": _time(handler.failing_since_ms),
        "next_attempt": _time(handler.next_attempt_ms),
        "lag_events": lag_events,
        "lag_events_capped": lag_events >= LAG_COUNT_LIMIT,
        "lag_seconds": round(lag_seconds, 3),
        "cursor_seq": handler.cursor_seq,
        "pending_replays": len(store.pending_replays(handler.id)),
        "delivery": {
            "mode": owner.split(":", 1)[0] if owner else None,
            "owner": owner,
            "lease_until": _time(handler.lease_until_ms) if owner else None,
        },
    }
