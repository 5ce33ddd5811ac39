"""emnify's filter syntax, read into an EventFilter and written back.

``q`` is a comma list of ``field:value``; several values of one field are joined with ``|``
(``q=type:3|5,severity:warn``). The same fields work as plain parameters (``?type=3|5``) and
as an event handler's filter (``"filter": "type:3|5,tags:fleet_a"``). Field names and value
forms come from ``query.fields``; a bad term raises ``FilterError`` naming where it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from herald.query.fields import BY_PUBLIC_NAME, Field, Kind, Match
from herald.query.filter import EventFilter
from herald.timefmt import format_ms, now_ms, parse_timestamp, to_ms

RANGE_NAMES = ("from", "until")
DAY = 86_400_000  # ms
FILTER_NAMES = sorted([*BY_PUBLIC_NAME, *RANGE_NAMES])
"""Every name a filter term may have."""
MAX_VALUES = 1000  # values in one filter, all fields together
MAX_TEXT = 256  # characters in one value
MAX_SUBSTRINGS = 20  # values of a substring field: each one is a LIKE over every row
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
RAT_NAMES = {
    "3g": 1,
    "utran": 1,
    "2g": 2,
    "geran": 2,
    "4g": 6,
    "lte": 6,
    "e-utran": 6,
    "e_utran": 6,
    "eutran": 6,
    "nb-iot": 8,
    "nbiot": 8,
    "lte-m": 9,
    "ltem": 9,
    "5g": 10,
    "nr": 10,
}
"""``rat:`` by name: the 3GPP RAT type numbers the PDP context records carry."""
_TRANSFORMS: dict[str, Callable[[str], str]] = {
    # An ICCID written with its Luhn check digit (20 digits) is stored without it.
    "iccid_with_luhn": lambda value: value[:-1] if len(value) > 19 else value,
    "rat": lambda value: str(RAT_NAMES.get(value.lower(), value)),
}


class FilterError(ValueError):
    """A filter term Herald cannot use: ``field`` says where (``q.type``, ``severity``)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Term:
    """One ``name:value`` as written, and where it was written (for errors)."""

    name: str
    raw: str
    where: str


def q_terms(q: str, where: str = "q") -> list[Term]:
    """The terms of a ``q`` text (``type:3|5,severity:1``)."""
    terms = []
    for part in q.split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition(":")
        name = name.strip()
        if not sep or not name:
            raise FilterError(where, f"{part!r} is not field:value")
        terms.append(Term(name, value.strip(), f"{where}.{name}"))
    return terms


def param_terms(params: Mapping[str, str]) -> list[Term]:
    """The terms given as plain parameters (``?type=3|5&from=...``)."""
    return [Term(name, params[name], name) for name in FILTER_NAMES if name in params]


def parse_filter(
    terms: Iterable[Term],
    *,
    scope: tuple[int, ...] | None,
    known_moniker: Callable[[str], bool] | None = None,
    organisation_named: Callable[[str], int | None] | None = None,
    now: int | None = None,
) -> EventFilter:
    """The EventFilter the terms ask for, within ``scope`` (None: every organisation).

    A range given one end only runs between that moment and now (the platform event API's
    rule). ``timestamp`` selects the events of one UTC day, the day of the moment given
    (emnify's "for querying events of 1 day"), within ``from``/``until`` if also given.
    ``known_moniker`` (if given) refuses monikers the catalogue does not know.
    ``organisation_named`` (if given) takes an organisation by its name (emnify's
    ``organisation:<name>``); a name it does not know selects no event.
    """
    values: dict[str, list[Any]] = {}
    moments: dict[str, tuple[int, str]] = {}
    days: list[tuple[int, str]] = []
    count = 0
    for term in terms:
        if term.name in RANGE_NAMES:
            moments[term.name] = (_moment(term), term.where)
            continue
        if term.name == "timestamp":
            if "|" in term.raw:
                raise FilterError(term.where, "one day only (a range: from and until)")
            days.append((_moment(term) // DAY * DAY, term.where))
            continue
        field = BY_PUBLIC_NAME.get(term.name)
        if field is None:
            raise FilterError(
                term.where, f"unknown filter field (known: {', '.join(FILTER_NAMES)})"
            )
        items = [term.raw] if field.kind is Kind.BOOL else term.raw.split("|")
        for item in (value.strip() for value in items):
            count += 1
            if count > MAX_VALUES:
                raise FilterError(term.where, f"a filter holds at most {MAX_VALUES} values")
            item = _TRANSFORMS.get(term.name, str)(item)
            if field.name == "organisation" and organisation_named and not _is_int(item):
                _checked(item, term.where)
                values.setdefault("organisation", []).append(organisation_named(item) or 0)
                continue
            target, value = _value(field, item, term.where)
            if target.name == "moniker" and known_moniker and not known_moniker(value):
                raise FilterError(term.where, f"unknown moniker {value!r}")
            values.setdefault(target.name, []).append(value)
            if target.match is Match.CONTAINS and len(values[target.name]) > MAX_SUBSTRINGS:
                raise FilterError(term.where, f"at most {MAX_SUBSTRINGS} substrings")
    from_ms, until_ms = _range(moments, now_ms() if now is None else now)
    for day, where in days:
        from_ms = day if from_ms is None else max(from_ms, day)
        until_ms = day + DAY - 1 if until_ms is None else min(until_ms, day + DAY - 1)
        if from_ms > until_ms:
            raise FilterError(where, "no moment of this day is within the other time terms")
    organisations = values.pop("organisation", None)
    if scope is not None:
        organisations = [o for o in (organisations or scope) if o in scope]
    return EventFilter(organisations, from_ms=from_ms, until_ms=until_ms, terms=values)


def to_q(flt: EventFilter) -> str:
    """The filter's terms in ``q`` syntax (without scope and range): how handlers keep it."""
    return ",".join(f"{name}:{'|'.join(map(_written, values))}" for name, values in flt.terms)


def _written(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _value(field: Field, item: str, where: str) -> tuple[Field, Any]:
    """``item`` as a value of ``field`` (or of its text twin, for a name given for an id)."""
    _checked(item, where)
    if field.kind is Kind.INT:
        try:
            return field, _int(item)
        except ValueError:
            if field.text_field is None:
                raise FilterError(where, f"{item!r} is not a whole number") from None
            return BY_PUBLIC_NAME[field.text_field], item
    if field.kind is Kind.LEVEL:
        return field, _level(field, item, where)
    if field.kind is Kind.BOOL:
        if item.lower() in _TRUE:
            return field, True
        if item.lower() in _FALSE:
            return field, False
        raise FilterError(where, "must be true or false")
    return field, item


def _checked(item: str, where: str) -> None:
    if not item:
        raise FilterError(where, "empty value")
    if "\x00" in item:
        raise FilterError(where, "must not contain NUL characters")
    if len(item) > MAX_TEXT:
        raise FilterError(where, f"a value has at most {MAX_TEXT} characters")


def _is_int(text: str) -> bool:
    try:
        _int(text)
    except ValueError:
        return False
    return True


def _int(text: str) -> int:
    number = int(text)
    if not -(2**63) <= number < 2**63:
        raise ValueError("out of range")
    return number


def _level(field: Field, item: str, where: str) -> int:
    assert field.levels is not None
    by_name = {name.lower(): level for level, name in field.levels.items()}
    if "warn" in by_name:
        by_name["warning"] = by_name["warn"]
    level = by_name.get(item.lower())
    if level is None:
        try:
            level = _int(item)
        except ValueError:
            level = None
    if level is None or level not in field.levels:
        known = ", ".join(f"{number} ({name})" for number, name in field.levels.items())
        raise FilterError(where, f"unknown {field.name} {item!r} (known: {known})")
    return level


def _moment(term: Term) -> int:
    try:
        return to_ms(parse_timestamp(term.raw))  # a date alone is its midnight, UTC
    except (ValueError, OverflowError) as exc:
        raise FilterError(
            term.where, f"must be an ISO 8601 time, e.g. 2026-11-01T00:00:00Z ({exc})"
        ) from None


def _range(moments: Mapping[str, tuple[int, str]], now: int) -> tuple[int | None, int | None]:
    start, until = moments.get("from"), moments.get("until")
    if start is None and until is None:
        return None, None
    if start is None or until is None:  # one end only: between it and now
        (moment, _where) = start or until  # type: ignore[misc]
        return min(moment, now), max(moment, now)
    if start[0] > until[0]:
        raise FilterError(start[1], "is after until")
    return start[0], until[0]


def legacy_handler_filter(
    old: Mapping[str, Any], type_of_moniker: Callable[[str], int | None]
) -> str:
    """The ``q`` text of a handler filter in the shape Herald took before 0.2
    (``{"event_types": [...], "monikers": [...], "severities": [...], "sources": [...],
    "alert_only": true, "target_types": [...], "endpoint_ids": [...], "tags": [...]}``).

    The old ``event_types`` and ``monikers`` passed an event of either; both together become
    one ``type`` term over the types and the monikers' types (it may pass a little more).
    """
    terms: dict[str, list[Any]] = {}
    types, monikers = list(old.get("event_types") or ()), list(old.get("monikers") or ())
    if types and monikers:
        types += [t for t in map(type_of_moniker, monikers) if t is not None]
        monikers = []
    for name, values in (
        ("type", types),
        ("moniker", monikers),
        ("severity", old.get("severities")),
        ("source", old.get("sources")),
        ("target_type", old.get("target_types")),
        ("endpoint", old.get("endpoint_ids")),
        ("tags", old.get("tags")),
    ):
        if values:
            terms[name] = list(dict.fromkeys(values))
    if old.get("alert_only"):
        terms["alert"] = [True]
    return to_q(EventFilter(terms=terms))


def echo(terms: Iterable[Term]) -> str:
    """The terms as the request wrote them, for the answer's filter echo."""
    return ",".join(f"{term.name}:{term.raw}" for term in terms)


def range_text(flt: EventFilter) -> str:
    """``from``/``until`` of a filter, for messages."""
    ends = (("from", flt.from_ms), ("until", flt.until_ms))
    return ",".join(f"{name}:{format_ms(ms)}" for name, ms in ends if ms is not None)
