"""From query parameters to an EventQuery: emnify's ``q`` filter, ``sort``, paging, cursor.

``q`` is a comma list of ``field:value``; several values of one field are joined with ``|``
(``q=type:3|5,severity:1``). The same fields work as plain parameters (``?type=3|5``).
Bad paging or sort is ``Malformed`` (400), a bad filter ``Invalid`` (422), as emnify's API
answers them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from herald.catalog import Catalog
from herald.errors import Invalid, Malformed
from herald.events.types import EventQuery, SortKey
from herald.query import syntax
from herald.query.fields import SORT_COLUMNS
from herald.query.filter import EventFilter
from herald.store import InvalidQuery
from herald.store.sql import decode_cursor

if TYPE_CHECKING:
    from herald.services import Services

MAX_PER_PAGE = 1000
DEFAULT_PER_PAGE = 100
FILTER_FIELDS = syntax.FILTER_NAMES
PARAMS = frozenset({"q", "sort", "page", "per_page", "cursor", *FILTER_FIELDS})


def refuse_unknown(params: Mapping[str, str], known: frozenset[str]) -> None:
    """``Invalid`` for a parameter this route does not take: a typo must not list
    everything."""
    unknown = sorted(set(params) - known)
    if unknown:
        raise Invalid.at(unknown[0], f"unknown parameter (known: {', '.join(sorted(known))})")


OrganisationNamed = Callable[[str], int | None]


async def organisation_names(
    services: Services, params: Mapping[str, str]
) -> OrganisationNamed | None:
    """How ``organisation:<name>`` finds its organisation, read (in a worker thread) only
    when the filter names one: the organisations by name. Names are unique (``herald org
    create`` refuses a second) and never change."""
    try:
        terms = [*syntax.q_terms(params.get("q") or ""), *syntax.param_terms(params)]
    except syntax.FilterError:
        return None  # parse_filters answers it
    named = [
        item.strip()
        for term in terms
        if term.name == "organisation"
        for item in term.raw.split("|")
        if not item.strip().lstrip("+-").isdigit()
    ]
    if not named:
        return None
    organisations = await services.run(services.store.organisations.all)
    by_name = {organisation.name: organisation.id for organisation in organisations}
    return by_name.get


def parse_filters(
    params: Mapping[str, str],
    *,
    scope: tuple[int, ...] | None,
    catalog: Catalog,
    organisation_named: OrganisationNamed | None = None,
) -> tuple[EventFilter, str]:
    """The filter that ``q`` and the plain filter parameters ask for, and its echo;
    ``organisation_named`` (from ``organisation_names``) resolves organisation names."""
    try:
        terms = [*syntax.q_terms(params.get("q") or ""), *syntax.param_terms(params)]
        # Any moniker: one the catalogue does not know is kept as Stacuity sent it.
        flt = syntax.parse_filter(terms, scope=scope, organisation_named=organisation_named)
    except syntax.FilterError as exc:
        raise Invalid.at(exc.field, exc.reason) from None
    return flt, syntax.echo(terms)


def parse_sort(raw: str | None) -> tuple[SortKey, ...]:
    """``sort=-timestamp,type`` as sort keys; ``Malformed`` for an unknown field."""
    if not raw:
        return (SortKey("timestamp", True),)
    keys = []
    for part in raw.split(","):
        name = part.strip()
        descending = name.startswith("-")
        if name[:1] in ("+", "-"):
            name = name[1:]  # one sign at most: "+-+-id" is no sort
        if name not in SORT_COLUMNS:
            raise Malformed.at(
                "sort", f"cannot sort by {name!r} (fields: {', '.join(SORT_COLUMNS)})"
            )
        keys.append(SortKey(name, descending))
    return tuple(keys)


def parse_paging(params: Mapping[str, str]) -> tuple[int, int]:
    """``page`` (from 1) and ``per_page`` (1..1000, default 100); ``Malformed`` when out of
    range."""
    page = _bounded(params, "page", 1, 1, 10**9)
    per_page = _bounded(params, "per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE)
    return page, per_page


def _bounded(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Malformed.at(name, "must be a whole number") from None
    if not low <= value <= high:
        raise Malformed.at(name, f"must be between {low} and {high}")
    return value


def _cursor(cursor: str) -> tuple[int, int]:
    try:
        return decode_cursor(cursor)
    except InvalidQuery as exc:
        raise Malformed.at("cursor", str(exc)) from None


def build_query(
    params: Mapping[str, str],
    *,
    scope: tuple[int, ...] | None,
    catalog: Catalog,
    fixed: Mapping[str, Any] | None = None,
    time_limit: float | None = None,
    organisation_named: OrganisationNamed | None = None,
) -> tuple[EventQuery, str, str]:
    """The EventQuery the parameters ask for, with the filter and sort echoes.

    ``fixed`` pins filter attributes from the path (``/endpoint/{id}/event``); ``time_limit``
    is the seconds the store may spend on it.
    """
    refuse_unknown(params, PARAMS)
    flt, echo = parse_filters(
        params, scope=scope, catalog=catalog, organisation_named=organisation_named
    )
    if fixed:
        flt = flt.replace(**fixed)
    sort = parse_sort(params.get("sort"))
    page, per_page = parse_paging(params)
    cursor = params.get("cursor") or None
    if cursor is not None and not all(-(2**63) <= part < 2**63 for part in _cursor(cursor)):
        raise Malformed.at("cursor", "cursor is not one this API issued")
    if cursor is not None and [k.field for k in sort] not in (
        ["timestamp"],
        ["id"],
        ["timestamp", "id"],
    ):
        raise Malformed.at("cursor", "cursor paging needs sort by timestamp or id")
    query = EventQuery(
        filter=flt,
        sort=sort,
        page=page,
        per_page=per_page,
        cursor=cursor,
        time_limit=time_limit,
    )
    sort_echo = ",".join(("-" if k.descending else "") + k.field for k in sort)
    return query, echo, sort_echo
