"""The event fields, declared once: where each lives in a record, its column, how it filters.

Everything that selects, sorts or groups events derives from ``FIELDS``: the events table's
columns (``store.sql.event_row``), the SQL of a filter and its Python predicate
(``query.filter``), the ``q`` parser (``query.syntax``), the sort and stats-group maps, and
whether the hourly counts can answer a stats query. Adding a field is one ``Field`` here, plus
a migration when it needs a column of its own.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from herald.catalog import CRITICALITIES, SEVERITIES, SOURCES
from herald.timefmt import parse_timestamp, to_ms

Record = Mapping[str, Any]


class Kind(enum.Enum):
    """How a field's values are written in ``q`` and kept in its column."""

    INT = "int"  # a 64-bit integer
    TEXT = "text"
    LEVEL = "level"  # an integer of a closed set, by number or by name (severity: warn)
    BOOL = "bool"
    TIME = "time"  # Unix milliseconds, filtered as a range (from, until)


class Match(enum.Enum):
    """How a filter on a field selects events."""

    ANY_OF = "any_of"  # equal to one of the values
    CONTAINS = "contains"  # contains one of the values, ignoring ASCII case
    RANGE = "range"  # between from and until, both included


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def at(*path: str) -> Callable[[Record], Any]:
    """The value at ``path`` in a record (nested objects), or None."""

    # A record is JSON: its objects are dicts. Checking for ``dict`` rather than the
    # ``Mapping`` ABC, and unrolling the one- and two-key paths of most fields, makes this
    # (run for every field of every event written) several times cheaper.
    if len(path) == 1:
        (key,) = path
        return lambda record: record.get(key) if isinstance(record, dict) else None
    if len(path) == 2:
        outer, inner = path

        def two_deep(record: Record) -> Any:
            value = record.get(outer) if isinstance(record, dict) else None
            return value.get(inner) if isinstance(value, dict) else None

        return two_deep

    def value_of(record: Record) -> Any:
        value: Any = record
        for key in path:
            if not isinstance(value, dict):
                return None
            value = value.get(key)
        return value

    return value_of


DELETE_PDP_CONTEXT = 5

_TYPE_ID = at("event_type", "id")
_VOLUME_TOTAL = at("detail", "volume", "total")
_COUNTRY_NAME = at("detail", "country", "name")
_OPERATOR_NAME = at("detail", "name")


def country(record: Record) -> str | None:
    """Update location and PDP context records carry ``detail.country.name``."""
    return _nonempty(_COUNTRY_NAME(record))


def operator(record: Record) -> str | None:
    """The network operator, ``detail.name`` of location and PDP context records."""
    return _nonempty(_OPERATOR_NAME(record))


def volume_mb(record: Record) -> float | None:
    """Data volume in MB: ``detail.volume.total`` of a Delete PDP Context."""
    if _TYPE_ID(record) != DELETE_PDP_CONTEXT:
        return None
    total = _VOLUME_TOTAL(record)
    if isinstance(total, bool) or not isinstance(total, int | float | str):
        return None
    try:
        volume = float(total)
    except ValueError:
        return None
    return volume if math.isfinite(volume) else None


_EMNIFY_ORGANISATION = at("payload", "data", "organisation", "id")
_STACUITY_ACCOUNT = at("payload", "data", "accountId")


def provider_organisation(record: Record) -> str | None:
    """The provider's own organisation: emnify's and 1NCE's ``organisation.id``, Stacuity's
    ``accountId`` (of the envelope kept as payload)."""
    value = _EMNIFY_ORGANISATION(record)
    if value is None:
        value = _STACUITY_ACCOUNT(record)
    return _text(value)


def _nonempty(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class Field:
    """One event field: its public name, where it sits in the record, how it filters.

    ``value`` gives the field's value from a stored record exactly as its column holds it,
    so that a filter's SQL and its predicate see the same thing.
    """

    name: str  # the public name, in q (``q=type:5``), as a parameter and in sort/group
    value: Callable[[Record], Any]
    kind: Kind
    column: str | None = None  # the events table's column, if it has one
    match: Match | None = Match.ANY_OF  # None: not a filter
    attribute: str | None = None  # the EventFilter keyword (``type_ids=(5,)``)
    aliases: tuple[str, ...] = ()
    levels: Mapping[int, str] | None = None  # Kind.LEVEL: the known values and their names
    text_field: str | None = None  # where a non-numeric value of an INT field goes
    sortable: bool = False
    groupable: bool = False  # a stats group
    rolled_up: bool = False  # kept in the hourly counts (store.rollup)
    # No index or rollup needs it: SQLite reads it from the record rather than
    # keep a second copy in its column (store.sql.Dialect.value); PostgreSQL keeps the column.
    lean: bool = False
    # A device key (SIM, ICCID, IMSI, user, target id): found through the small
    # ``device_keys`` table (value -> the endpoints whose events carried it) and the endpoint
    # index, not an index of its own over every event (store.sql.where_clause).
    device_key: bool = False


def _typed(kind: Kind, path: Callable[[Record], Any]) -> Callable[[Record], Any]:
    convert = {Kind.INT: _int, Kind.LEVEL: _int, Kind.TEXT: _text, Kind.BOOL: _bool}[kind]
    return lambda record: convert(path(record))


def _field(name: str, kind: Kind, path: tuple[str, ...], **options: Any) -> Field:
    return Field(name, _typed(kind, at(*path)), kind, **options)


def _moment(key: str) -> Callable[[Record], int | None]:
    def value_of(record: Record) -> int | None:
        raw = record.get(key)
        try:
            return to_ms(parse_timestamp(raw)) if isinstance(raw, str) else None
        except ValueError:
            return None

    return value_of


FIELDS: tuple[Field, ...] = (
    _field("id", Kind.INT, ("id",), column="id", match=None, sortable=True),
    Field("timestamp", _moment("timestamp"), Kind.TIME, "ts", Match.RANGE, sortable=True),
    Field("received", _moment("received"), Kind.TIME, "received", None, sortable=True),
    _field(
        "organisation",
        Kind.INT,
        ("organisation", "id"),
        column="organisation_id",
        attribute="organisation_ids",
        sortable=True,
        rolled_up=True,
    ),
    _field(
        "type",
        Kind.INT,
        ("event_type", "id"),
        column="type_id",
        attribute="type_ids",
        aliases=("code",),
        sortable=True,
        groupable=True,
        rolled_up=True,
    ),
    _field(
        "severity",
        Kind.LEVEL,
        ("event_severity", "id"),
        column="severity",
        attribute="severities",
        levels=SEVERITIES,
        sortable=True,
        groupable=True,
        rolled_up=True,
    ),
    _field(
        "source",
        Kind.LEVEL,
        ("event_source", "id"),
        column="source",
        attribute="sources",
        levels=SOURCES,
        sortable=True,
        groupable=True,
        rolled_up=True,
    ),
    _field(
        "alert",
        Kind.BOOL,
        ("alert",),
        column="alert",
        attribute="alert",
        sortable=True,
        rolled_up=True,
    ),
    _field(
        "criticality",
        Kind.LEVEL,
        ("criticality", "id"),
        column="criticality",
        attribute="criticalities",
        levels=CRITICALITIES,
        sortable=True,
        rolled_up=True,
    ),
    _field(
        "endpoint",
        Kind.INT,
        ("endpoint", "id"),
        column="endpoint_id",
        attribute="endpoint_ids",
        text_field="endpoint_name",
        sortable=True,
        groupable=True,
    ),
    _field(
        "endpoint_name",
        Kind.TEXT,
        ("endpoint", "name"),
        column="endpoint_name",
        attribute="endpoint_names",
    ),
    _field("sim", Kind.INT, ("sim", "id"), column="sim_id", attribute="sim_ids", device_key=True),
    _field(
        "iccid",
        Kind.TEXT,
        ("sim", "iccid"),
        column="iccid",
        attribute="iccids",
        aliases=("iccid_with_luhn",),
        sortable=True,
        device_key=True,
    ),
    _field("msisdn", Kind.TEXT, ("sim", "msisdn"), column="msisdn", lean=True, attribute="msisdns"),
    _field(
        "imsi",
        Kind.TEXT,
        ("imsi", "imsi"),
        column="imsi",
        attribute="imsis",
        sortable=True,
        device_key=True,
    ),
    _field("imei", Kind.TEXT, ("endpoint", "imei"), column="imei", lean=True, attribute="imeis"),
    _field(
        "ip_address",
        Kind.TEXT,
        ("endpoint", "ip_address"),
        column="ip_address",
        lean=True,
        attribute="ip_addresses",
        sortable=True,
    ),
    _field(
        "user",
        Kind.INT,
        ("user", "id"),
        column="user_id",
        attribute="user_ids",
        text_field="username",
        sortable=True,
        device_key=True,
    ),
    _field(
        "username",
        Kind.TEXT,
        ("user", "username"),
        column="username",
        lean=True,
        attribute="usernames",
    ),
    _field(
        "tags",
        Kind.TEXT,
        ("endpoint", "tags"),
        column="tags",
        lean=True,
        attribute="tags",
        match=Match.CONTAINS,
        sortable=True,
    ),
    _field(
        "target_type",
        Kind.TEXT,
        ("target", "type"),
        column="target_type",
        lean=True,
        attribute="target_types",
    ),
    _field(
        "target_id",
        Kind.TEXT,
        ("target", "id"),
        column="target_id",
        attribute="target_ids",
        device_key=True,
    ),
    _field("moniker", Kind.TEXT, ("moniker",), column="moniker", lean=True, attribute="monikers"),
    _field("provider", Kind.TEXT, ("provider",), column="provider", attribute="providers"),
    _field(
        "external_id", Kind.TEXT, ("external_id",), column="external_id", attribute="external_ids"
    ),
    Field(
        "provider_organisation",
        provider_organisation,
        Kind.TEXT,
        column="provider_organisation",
        lean=True,
        attribute="provider_organisations",
    ),
    _field(
        "provider_type",
        Kind.TEXT,
        ("provider_type",),
        column="provider_type",
        lean=True,
        attribute="provider_types",
    ),
    _field(
        "description",
        Kind.TEXT,
        ("description",),
        column="description",
        lean=True,
        attribute="description",
        match=Match.CONTAINS,
    ),
    Field("country", country, Kind.TEXT, column="country", groupable=True),
    # emnify's q names the operator "network"
    Field("operator", operator, Kind.TEXT, column="operator", groupable=True, aliases=("network",)),
    # The radio access technology of a PDP context (3GPP RAT type: 1 UTRAN/3G, 2 GERAN/2G,
    # 6 E-UTRAN/4G, 8 NB-IoT, 9 LTE-M, 10 NR/5G); q also takes those names (query.syntax).
    _field("rat", Kind.INT, ("detail", "pdp_context", "rat_type"), column="rat", lean=True),
)

BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}
BY_PUBLIC_NAME: dict[str, Field] = {
    name: f for f in FIELDS if f.match is not None for name in (f.name, *f.aliases)
}
"""The names a filter may use in ``q`` and as parameters (aliases included)."""
BY_ATTRIBUTE: dict[str, Field] = {f.attribute: f for f in FIELDS if f.attribute}

SORT_COLUMNS: dict[str, str] = {f.name: f.column for f in FIELDS if f.sortable and f.column}
"""Public sort field -> column."""
STATS_GROUPS: dict[str, str] = {f.name: f.column for f in FIELDS if f.groupable and f.column}
"""What event counts can be grouped by -> column."""
DEVICE_KEYS: tuple[Field, ...] = tuple(f for f in FIELDS if f.device_key)
"""The fields found through ``device_keys`` (``Field.device_key``)."""
ROLLED_UP: frozenset[str] = frozenset(f.name for f in FIELDS if f.rolled_up)
"""The fields the hourly counts keep (besides the time)."""
