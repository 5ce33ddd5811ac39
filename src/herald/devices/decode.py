"""A stored record read for its device state only: the few fields the fold looks at.

msgspec decodes a record's bytes into a Struct of those fields and skips the rest (the SIM,
the IMSI, the organisation...) without building them: several times cheaper than parsing
the whole record. Which fields depends on the event's type, known from the log's column:
the network, session and description of location and session events, the endpoint of all.
"""

from __future__ import annotations

from typing import Any

import msgspec

from herald.devices.state import DETAIL_TYPES, JSON


class _Plain(msgspec.Struct):
    """What the state reads of any event."""

    endpoint: Any = None
    timestamp: Any = None


class _Detailed(_Plain):
    """What it reads of a location or session event (``state.DETAIL_TYPES``)."""

    description: Any = None
    event_source: Any = None
    event_severity: Any = None
    detail: Any = None


_PLAIN = msgspec.json.Decoder(_Plain)
_DETAILED = msgspec.json.Decoder(_Detailed)


def record_fields(type_id: int, body: bytes) -> dict[str, JSON] | None:
    """The fields of the record ``body`` that the state of an event of ``type_id`` reads
    (absent ones None), or None if it is no JSON object."""
    decoder = _DETAILED if type_id in DETAIL_TYPES else _PLAIN
    try:
        found = decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return msgspec.structs.asdict(found)
