"""A provider's own type on Herald's catalogue: known types kept, unknown ones generic.

A record of a type id (emnify, 1NCE) or moniker (Stacuity) the catalogue does not know is
still stored, under the provider's generic type (``UNKNOWN_TYPES``): a new type on the
provider's side never holds a stream up. The provider's own type is kept beside Herald's as
``provider_type``.
"""

from __future__ import annotations

from typing import Any

from herald.catalog import UNKNOWN_TYPES, Catalog
from herald.ingest.errors import RecordError

MAX_MONIKER = 128
MAX_TYPE_ID = 2**31 - 1


def resolve_provider_type(provider: str, event: dict[str, Any], catalog: Catalog) -> str:
    """Point a normalised event at Herald's type; return the provider's own type as text."""
    if provider == "stacuity":
        moniker = str(event["moniker"])
        if len(moniker) > MAX_MONIKER:
            raise RecordError("eventType", f"at most {MAX_MONIKER} characters")
        if catalog.by_moniker(moniker) is None:
            del event["moniker"]
            event["event_type"] = {"id": UNKNOWN_TYPES[provider]}
        return moniker
    type_id = event["event_type"]["id"]
    if not 0 <= type_id <= MAX_TYPE_ID:
        raise RecordError("event_type.id", f"must be an integer from 0 to {MAX_TYPE_ID}")
    event["event_type"] = {"id": catalog.provider_type(provider, type_id)}
    return str(type_id)
