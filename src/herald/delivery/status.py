"""A handler's delivery state as the API and the CLI show it."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from enum import StrEnum

import orjson

from herald.handlers.filters import handler_filter
from herald.handlers.types import Handler
from herald.store import Store
from herald.timefmt import now_ms, parse_timestamp, to_ms

LAG_COUNT_LIMIT = 100_000
"""Events ``lag_events`` counts at most: a status read costs at most this many rows."""


class HandlerState(StrEnum):
    """Whether a handler delivers."""

    ACTIVE = "active"
    RETRYING = "retrying"  # its last attempt failed; it backs off
    DISABLED = "disabled"  # paused by its user or disabled by failures


@dataclass(frozen=True, slots=True)
class HandlerStatus:
    """A handler's delivery state when it was read."""

    handler: Handler
    state: HandlerState
    lag_events: int  # events after the cursor its filter selects, up to LAG_COUNT_LIMIT
    lag_ms: int  # how long the first of them has waited since it was received
    pending_replays: int
    owner: str | None  # the node delivering it (``serve:…`` or ``worker:…``) while leased

    @property
    def lag_events_capped(self) -> bool:
        """Whether ``lag_events`` stopped counting at its limit."""
        return self.lag_events >= LAG_COUNT_LIMIT


def handler_status(store: Store, handler: Handler) -> HandlerStatus:
    """State (active, retrying, disabled), lag (in the events its filter selects) and
    where delivery runs, beside the handler's failures and next attempt."""
    now = now_ms()
    if not handler.spec.enabled:
        state = HandlerState.DISABLED
    elif handler.failures:
        state = HandlerState.RETRYING
    else:
        state = HandlerState.ACTIVE
    wanted = handler_filter(handler.spec.filter)
    lag_events = store.log.count(
        handler.organisation_id, handler.cursor_seq, wanted, LAG_COUNT_LIMIT
    )
    lag_ms = 0
    if lag_events:
        first = store.log.first(handler.organisation_id, handler.cursor_seq, wanted)
        received = orjson.loads(first).get("received") if first else None
        with contextlib.suppress(ValueError, OverflowError):  # an odd date: lag unknown
            if isinstance(received, str):
                lag_ms = max(now - to_ms(parse_timestamp(received)), 0)
    leased = handler.lease_until_ms is not None and handler.lease_until_ms > now
    return HandlerStatus(
        handler=handler,
        state=state,
        lag_events=lag_events,
        lag_ms=lag_ms,
        pending_replays=len(store.handlers.pending_replays(handler.id)),
        owner=handler.owner if leased else None,
    )
