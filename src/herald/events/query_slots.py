"""A bound on each organisation's queries in flight, so that one tenant's slow queries cannot
take every store thread; the queries themselves have a time limit (``EventQuery.time_limit``).

One more query than the organisation's slots is refused at once (``RetryLater``: 429 with
``Retry-After``) rather than waiting: a waiting request would hold its connection and keep
its client guessing.
A slot is held until the query's work ends, not until its request does: a client that hangs
up leaves its query running in a store thread (to its time limit), so the slot stays taken.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from herald.errors import RetryLater
from herald.metrics import QUERIES_REFUSED

T = TypeVar("T")


class QuerySlots:
    """At most ``per_organisation`` queries of one organisation at a time (in one process).

    Used from the event loop only, so a plain dict needs no lock.
    """

    def __init__(self, per_organisation: int) -> None:
        self.per_organisation = per_organisation
        self._running: dict[int, int] = {}

    def take(self, organisation_id: int | None) -> Callable[[], None]:
        """One of ``organisation_id``'s slots, and the function that gives it back; None (a
        platform token's query) takes none. ``RetryLater`` when every slot is taken."""
        if organisation_id is None:
            return lambda: None
        running = self._running.get(organisation_id, 0)
        if running >= self.per_organisation:
            QUERIES_REFUSED.labels("busy").inc()
            raise RetryLater(
                f"this organisation already has {running} queries running (at most "
                f"{self.per_organisation} at once): retry when one has answered",
                title="Too many queries",
                retry_after=1,
            )
        self._running[organisation_id] = running + 1
        given_back = False

        def give_back() -> None:
            nonlocal given_back
            if given_back:
                return
            given_back = True
            left = self._running[organisation_id] - 1
            if left:
                self._running[organisation_id] = left
            else:
                del self._running[organisation_id]

        return give_back

    async def run(self, organisation_id: int | None, work: Callable[[], Awaitable[T]]) -> T:
        """``work()`` in one of the organisation's slots, held until the work ends even if
        the caller is cancelled first (its request gone)."""
        give_back = self.take(organisation_id)
        task = asyncio.ensure_future(work())

        def done(finished: asyncio.Future[T]) -> None:
            give_back()
            if not finished.cancelled():
                finished.exception()  # retrieved: an abandoned query's error is not logged

        task.add_done_callback(done)
        return await asyncio.shield(task)
