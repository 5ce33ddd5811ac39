"""A handler's filter as delivery matches it: its kept ``q`` text (canonical, checked when
it was written: ``handlers/filters.py``) parsed once into an EventFilter."""

from __future__ import annotations

import functools

from herald.query import syntax
from herald.query.filter import EventFilter


@functools.lru_cache(maxsize=4096)
def handler_filter(q: str) -> EventFilter:
    """The EventFilter of a kept handler filter (parsed once, not every step)."""
    return syntax.parse_filter(syntax.q_terms(q, "filter"), scope=None)
