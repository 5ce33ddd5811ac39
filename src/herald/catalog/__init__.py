"""Herald's event-type catalogue (emnify/1NCE types, Stacuity monikers, custom codes)."""

from herald.catalog.core import (
    CRITICALITIES,
    CUSTOM_CODE_MIN,
    PROVIDER_ID_MAX,
    SEVERITIES,
    SOURCES,
    UNKNOWN_TYPES,
    Catalog,
    EventType,
    Moniker,
    Scope,
    load_catalog,
    normalise_severity,
    normalise_source,
)

__all__ = [
    "CRITICALITIES",
    "CUSTOM_CODE_MIN",
    "PROVIDER_ID_MAX",
    "SEVERITIES",
    "SOURCES",
    "UNKNOWN_TYPES",
    "Catalog",
    "EventType",
    "Moniker",
    "Scope",
    "load_catalog",
    "normalise_severity",
    "normalise_source",
]
