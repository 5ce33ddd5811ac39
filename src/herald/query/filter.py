"""One event filter: which events a list, a stats query, a live stream or a handler selects.

The store compiles it to SQL (``store.sql.where_clause``); ``EventFilter.matches`` is the same
selection over a stored record, for the live stream and the delivery worker. Both read each
field's value through its declaration in ``query.fields``, so they cannot drift apart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from herald.query.fields import BY_ATTRIBUTE, BY_NAME, FIELDS, Match, Record

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_ORGANISATION = BY_NAME["organisation"]
_TIMESTAMP = BY_NAME["timestamp"]
_ORDER = {f.name: i for i, f in enumerate(FIELDS)}

Terms = tuple[tuple[str, tuple[Any, ...]], ...]


def ascii_lower(text: str) -> str:
    """``text`` with A-Z lowered and nothing else: SQLite's LIKE ignores ASCII case only."""
    return text.translate(_ASCII_LOWER)


@dataclass(init=False, frozen=True, slots=True)
class EventFilter:
    """Which events a query selects: organisations in scope, a time range and terms.

    A term names a field and values, any of which selects (equal, or contained ignoring ASCII
    case, as the field declares); terms combine with AND. ``organisation_ids`` None is every
    organisation (internal use), an empty tuple none. Built by keyword with the fields'
    attribute names (``EventFilter(organisation_ids=(1,), type_ids=(3, 5))``) or by ``terms``
    keyed by field name.
    """

    organisation_ids: tuple[int, ...] | None
    from_ms: int | None
    until_ms: int | None
    terms: Terms
    _needles: dict[str, tuple[str, ...]] = field(init=False, compare=False, repr=False)

    def __init__(
        self,
        organisation_ids: Iterable[int] | None = None,
        *,
        from_ms: int | None = None,
        until_ms: int | None = None,
        terms: Mapping[str, Iterable[Any]] | Terms | None = None,
        **by_attribute: Any,
    ) -> None:
        collected: dict[str, tuple[Any, ...]] = {}
        for name, values in dict(terms or {}).items():
            if name not in BY_NAME or BY_NAME[name].match in (None, Match.RANGE):
                raise TypeError(f"{name!r} is not a filter field")
            collected[name] = tuple(values)
        for attribute, values in by_attribute.items():
            declared = BY_ATTRIBUTE.get(attribute)
            if declared is None or declared.name == "organisation":
                raise TypeError(f"EventFilter has no attribute {attribute!r}")
            collected.pop(declared.name, None)  # replaces a term of ``terms``
            if values is not None:
                collected[declared.name] = (
                    (values,) if isinstance(values, str | bool) else tuple(values)
                )
        kept = tuple(
            sorted(((n, v) for n, v in collected.items() if v), key=lambda t: _ORDER[t[0]])
        )
        scope = None if organisation_ids is None else tuple(organisation_ids)
        needles = {
            name: tuple(ascii_lower(str(value)) for value in values)
            for name, values in kept
            if BY_NAME[name].match is Match.CONTAINS
        }
        for name, value in (
            ("organisation_ids", scope),
            ("from_ms", from_ms),
            ("until_ms", until_ms),
            ("terms", kept),
            ("_needles", needles),
        ):
            object.__setattr__(self, name, value)

    # -- reading --------------------------------------------------------------
    def term(self, name: str) -> tuple[Any, ...] | None:
        """The values of the term on field ``name``, if the filter has one."""
        return next((values for field, values in self.terms if field == name), None)

    @property
    def type_ids(self) -> frozenset[int] | None:
        """The event types that may pass (None: any), to skip log entries unparsed."""
        values = self.term("type")
        return frozenset(values) if values is not None else None

    @property
    def selects_all(self) -> bool:
        """Whether every event of the organisations in scope passes (no terms, no range)."""
        return not self.terms and self.from_ms is None and self.until_ms is None

    def fields(self) -> set[str]:
        """The names of the fields this filter narrows (``organisation`` for a scope)."""
        used = {name for name, _ in self.terms}
        if self.organisation_ids is not None:
            used.add("organisation")
        if self.from_ms is not None or self.until_ms is not None:
            used.add("timestamp")
        return used

    # -- deriving -------------------------------------------------------------
    def replace(self, **changes: Any) -> EventFilter:
        """A copy with ``organisation_ids``, ``from_ms``, ``until_ms`` or terms (by field
        attribute, as the constructor takes them) replaced."""
        return dataclasses.replace(self, **changes)

    # -- matching -------------------------------------------------------------
    def matches(self, record: Record) -> bool:
        """Whether this filter selects ``record`` (a stored event as the API serves it), as
        the SQL of ``store.sql.where_clause`` does in the database."""
        scope = self.organisation_ids
        if scope is not None and _ORGANISATION.value(record) not in scope:
            return False
        if self.from_ms is not None or self.until_ms is not None:
            ts = _TIMESTAMP.value(record)
            if ts is None:
                return False
            if (self.from_ms is not None and ts < self.from_ms) or (
                self.until_ms is not None and ts > self.until_ms
            ):
                return False
        for name, values in self.terms:
            value = BY_NAME[name].value(record)
            needles = self._needles.get(name)
            if needles is not None:
                if not isinstance(value, str):
                    return False
                haystack = ascii_lower(value)
                if not any(needle in haystack for needle in needles):
                    return False
            elif value is None or value not in values:
                return False
        return True
