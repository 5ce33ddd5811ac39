"""Each organisation's event budget: events per second with a burst, and body bytes per day.

The per-token rate limit (``api/ratelimit.py``) counts requests; a batch of 1,000 events is
one request. The event budget counts what a request writes: its events take from the
organisation's token bucket (``events_per_second``, holding at most ``burst``) and its body's
bytes from the organisation's day (UTC). A request over either is refused whole, before its
events are validated (``RetryLater``: 429 with ``Retry-After``, naming the budget); providers'
streamers retry such a batch. A batch that could never fit (more events than the burst, more
bytes than a day's budget) is ``Invalid`` instead (422): retrying it would not help.

The defaults are the server's (``HERALD_EVENT_BUDGET_*``); an organisation's own come from
``herald org limits``. Budgets are counted in each server process (one node's share).
Platform (internal) tokens' writes are not counted.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from herald.config import Settings
from herald.errors import Invalid, RetryLater
from herald.metrics import EVENT_BUDGET_REFUSED
from herald.organisations.types import Organisation

DAY_SECONDS = 86_400
MAX_ORGANISATIONS = 100_000  # counters kept; beyond, all are forgotten (a fresh start)


@dataclass(frozen=True, slots=True)
class Budget:
    """An organisation's budget: events per second (0: none), burst, bytes per UTC day."""

    events_per_second: float
    burst: int
    bytes_per_day: int


@dataclass(slots=True)
class _Account:
    tokens: float
    at: float  # monotonic seconds of the last refill
    day: int  # the UTC day ``spent`` counts
    spent: int  # body bytes that day
    refused_until: float = 0.0  # monotonic: the end of the wait its last refusal gave
    refused_reason: str = ""


class EventBudgets:
    """Every organisation's account of events and bytes, in this process.

    ``charge`` is called from the compute threads and the event loop alike; one lock keeps
    the arithmetic whole (a few hundred nanoseconds a request).
    """

    def __init__(
        self,
        default: Budget,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.default = default
        self._monotonic = monotonic
        self._wall = wall
        self._accounts: dict[int, _Account] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> EventBudgets:
        """The server's defaults (``HERALD_EVENT_BUDGET_*``)."""
        return cls(
            Budget(
                settings.event_budget_per_second,
                settings.event_budget_burst,
                settings.event_budget_bytes_per_day,
            )
        )

    def budget(self, organisation: Organisation | None) -> Budget:
        """An organisation's budget: its own settings, each else the server's."""
        if organisation is None:
            return self.default
        own = (organisation.events_per_second, organisation.event_burst)
        if own == (None, None) and organisation.bytes_per_day is None:
            return self.default
        return Budget(
            self.default.events_per_second if own[0] is None else own[0],
            self.default.burst if own[1] is None else own[1],
            organisation.bytes_per_day or self.default.bytes_per_day,
        )

    def charge(self, organisation_id: int, budget: Budget, events: int, body_bytes: int) -> None:
        """Take ``events`` and ``body_bytes`` from the organisation's budget, or raise the
        error that refuses the request (nothing taken then): ``Invalid`` for a request that
        never fits, ``RetryLater`` for one that fits later."""
        if budget.events_per_second <= 0:
            return
        if events > budget.burst:
            _refuse_whole(
                "burst",
                f"a batch of {events} events is more than this "
                f"organisation's burst of {budget.burst} events: send smaller batches",
            )
        if body_bytes > budget.bytes_per_day:
            _refuse_whole(
                "bytes_per_day",
                f"a body of {body_bytes} bytes is more than this "
                f"organisation's {budget.bytes_per_day} bytes per day",
            )
        now, wall = self._monotonic(), self._wall()
        day = int(wall // DAY_SECONDS)
        with self._lock:
            account = self._accounts.get(organisation_id)
            if account is None:
                if len(self._accounts) >= MAX_ORGANISATIONS:
                    self._accounts.clear()
                account = _Account(budget.burst, now, day, 0)
                self._accounts[organisation_id] = account
            account.tokens = min(
                budget.burst, account.tokens + (now - account.at) * budget.events_per_second
            )
            account.at = now
            if account.day != day:
                account.day, account.spent = day, 0
            if account.spent + body_bytes > budget.bytes_per_day:
                wait = (day + 1) * DAY_SECONDS - wall
                _refuse_for(
                    "bytes_per_day",
                    f"this organisation's budget of {budget.bytes_per_day} bytes per day "
                    f"(UTC) is spent ({account.spent} bytes)",
                    wait,
                )
            if account.tokens < events:
                wait = (events - account.tokens) / budget.events_per_second
                reason = (
                    f"this organisation's budget of {budget.events_per_second:g} events per "
                    f"second (burst {budget.burst}) is spent for {events} more events"
                )
                account.refused_until, account.refused_reason = now + wait, reason
                _refuse_for("events_per_second", reason, wait)
            account.tokens -= events
            account.spent += body_bytes

    def check_waited(self, organisation_id: int) -> None:
        """Refuse a write at once, before its body is parsed, while the organisation is
        still inside the wait its last events-per-second refusal gave (``Retry-After``): a
        client that retries sooner costs the server no parsing. Cheap enough for the loop."""
        with self._lock:
            account = self._accounts.get(organisation_id)
            if account is None or not account.refused_until:
                return
            wait = account.refused_until - self._monotonic()
            if wait <= 0:
                account.refused_until = 0.0
                return
            reason = account.refused_reason
        _refuse_for("events_per_second", reason, wait)


def _refuse_whole(name: str, reason: str) -> None:
    EVENT_BUDGET_REFUSED.labels(name).inc()
    raise Invalid.at(f"event_budget.{name}", reason, title="Over the event budget")


def _refuse_for(name: str, reason: str, wait_seconds: float) -> None:
    EVENT_BUDGET_REFUSED.labels(name).inc()
    retry_after = max(1, math.ceil(wait_seconds))
    raise RetryLater(
        f"event_budget.{name}: {reason}; retry after {retry_after} s",
        [{"field": f"event_budget.{name}", "reason": reason}],
        title="Over the event budget",
        retry_after=retry_after,
    )
