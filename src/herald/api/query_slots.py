"""A bound on each organisation's queries in flight, so that one tenant's slow queries cannot
take every store thread; the queries themselves have a time limit (``EventQuery.time_limit``).

One more query than the organisation's slots answers 429 with ``Retry-After`` at once, rather
than waiting: a waiting request would hold its connection and keep its client guessing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from herald.api.problems import Problem
from herald.metrics import QUERIES_REFUSED


class QuerySlots:
    """At most ``per_organisation`` queries of one organisation at a time (in one process).

    Used from the event loop only, so a plain dict needs no lock.
    """

    def __init__(self, per_organisation: int) -> None:
        self.per_organisation = per_organisation
        self._running: dict[int, int] = {}

    @contextmanager
    def hold(self, organisation_id: int | None) -> Iterator[None]:
        """One of ``organisation_id``'s slots while the block runs; None (a platform token's
        query) takes none. 429 when every slot is taken."""
        if organisation_id is None:
            yield
            return
        running = self._running.get(organisation_id, 0)
        if running >= self.per_organisation:
            QUERIES_REFUSED.labels("busy").inc()
            raise Problem(
                429,
                "Too many queries",
                f"this organisation already has {running} queries running (at most "
                f"{self.per_organisation} at once): retry when one has answered",
                headers={"Retry-After": "1"},
            )
        self._running[organisation_id] = running + 1
        try:
            yield
        finally:
            left = self._running[organisation_id] - 1
            if left:
                self._running[organisation_id] = left
            else:
                del self._running[organisation_id]
