"""The fleet simulator: organisations and devices living through time, producing events.

``World`` makes the events (``EventIn`` documents); ``backfill`` writes history straight
through the store, ``live`` sends a stream to a running server, ``demo`` keeps a small
world alive inside ``herald serve``.
"""

from __future__ import annotations

from herald.simulate.engine import World

__all__ = ["World"]
