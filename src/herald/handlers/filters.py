"""Which events a handler wants: the event list's filter, in ``q`` syntax, without the
organisation (a handler only ever sees its own) and without a time range.

``"filter": "type:3|5,severity:warn,tags:fleet_a"`` selects what ``GET /event?q=...`` with
the same text lists. The shape handlers took before (``{"event_types": [...], ...}``) is
still taken from clients and converted here, once (``LegacyFilter``, ``from_legacy``): a
handler keeps its filter as canonical ``q`` text only (the store's upgrade converts filters
kept in the old shape with ``from_legacy`` too). ``canonical_filter`` checks a filter into
that text; ``handler_filter`` parses the kept text into the ``EventFilter`` that delivery
reads the log with (and the rules match with), once per text.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from herald.catalog import Catalog
from herald.query import syntax
from herald.query.filter import EventFilter

MAX_FILTER_CHARS = 20_000
_NOT_FOR_HANDLERS = {"organisation", "from", "until", "timestamp"}  # a scope, a time range
HANDLER_FILTER_NAMES = [name for name in syntax.FILTER_NAMES if name not in _NOT_FOR_HANDLERS]
"""The names a handler's filter may use (its error messages offer these only)."""


class LegacyFilter(BaseModel):
    """A handler filter as Herald took it before the ``q`` form: every field narrows;
    ``event_types`` and ``monikers`` together pass an event of either."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_types: list[int] = Field(default_factory=list, max_length=1000)
    monikers: list[str] = Field(default_factory=list, max_length=1000)
    severities: list[int] = Field(default_factory=list, max_length=10)
    sources: list[int] = Field(default_factory=list, max_length=10)
    alert_only: bool = False
    target_types: list[str] = Field(default_factory=list, max_length=100)
    endpoint_ids: list[int] = Field(default_factory=list, max_length=10_000)
    tags: list[str] = Field(default_factory=list, max_length=100)


_LEGACY_NAMES = {
    "filter.type": "filter.event_types",
    "filter.moniker": "filter.monikers",
    "filter.severity": "filter.severities",
    "filter.source": "filter.sources",
    "filter.target_type": "filter.target_types",
    "filter.endpoint": "filter.endpoint_ids",
    "filter.alert": "filter.alert_only",
}


def canonical_filter(value: str | Mapping[str, Any], catalog: Catalog) -> str:
    """A handler filter as it is kept: checked, in canonical ``q`` text (empty: all events).

    Raises ``syntax.FilterError`` naming ``filter.<field>`` (in the old shape's names for a
    filter given in the old shape).
    """
    if isinstance(value, Mapping):
        try:
            legacy = LegacyFilter.model_validate(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(part) for part in ("filter", *first["loc"][:1]))
            raise syntax.FilterError(field, first["msg"]) from None
        try:
            return canonical_filter(from_legacy(legacy.model_dump(), catalog), catalog)
        except syntax.FilterError as exc:
            raise syntax.FilterError(_LEGACY_NAMES.get(exc.field, exc.field), exc.reason) from None
    if len(value) > MAX_FILTER_CHARS:
        raise syntax.FilterError("filter", f"at most {MAX_FILTER_CHARS} characters")
    terms = syntax.q_terms(value, "filter")
    for term in terms:
        if term.name in _NOT_FOR_HANDLERS:
            raise syntax.FilterError(term.where, "not part of a handler's filter")
        if term.name not in HANDLER_FILTER_NAMES:
            known = ", ".join(HANDLER_FILTER_NAMES)
            raise syntax.FilterError(term.where, f"unknown filter field (known: {known})")
    # any moniker, as q=moniker: takes it: a Stacuity moniker no catalogue knows is kept as
    # the record's moniker, so a handler can select it
    return syntax.to_q(syntax.parse_filter(terms, scope=None))


@functools.lru_cache(maxsize=4096)
def handler_filter(q: str) -> EventFilter:
    """The EventFilter of a handler filter's ``q`` text (parsed once per text, not every
    step). Raises ``syntax.FilterError`` for text no ``canonical_filter`` kept."""
    return syntax.parse_filter(syntax.q_terms(q, "filter"), scope=None)


def from_legacy(old: Mapping[str, Any], catalog: Catalog) -> str:
    """The ``q`` text of a filter in the old shape (its monikers' types from ``catalog``):
    for a client that sends one, and for the store's upgrade of filters kept in it."""

    def type_of(moniker: str) -> int | None:
        known = catalog.by_moniker(moniker)
        return known.type_id if known else None

    return syntax.legacy_handler_filter(old, type_of)
