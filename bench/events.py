"""A deterministic fleet of simulated events: the same ``i`` always gives the same event.

Organisations hold skewed shares of the traffic (the first is the big tenant), endpoints
produce data sessions, location updates and the odd quota or SIM event, as a cellular IoT
fleet does.
"""

from __future__ import annotations

from typing import Any

from herald.catalog import Catalog
from herald.events.build import build_event
from herald.events.codec import Checked, OrganisationRef, check
from herald.ids import EPOCH_MS, NODE_BITS, SEQUENCE_BITS
from herald.record import NewEvent
from herald.timefmt import format_ms

ORGANISATIONS = (101, 102, 103, 104, 105, 106, 107, 108)
ORGANISATION_WEIGHTS = (30, 20, 15, 10, 10, 5, 5, 5)  # percent of the traffic
ENDPOINTS_PER_ORGANISATION = 25_000
# (type id, weight): data sessions and location updates dominate, as on a real fleet.
TYPES = ((3, 30), (5, 30), (1, 15), (2, 10), (18, 4), (11, 3), (8, 3), (9, 2), (6, 2), (10001, 1))
COUNTRIES = (("Germany", "Telekom"), ("France", "Orange"), ("Spain", "Movistar"), ("Italy", "TIM"))

_ORGANISATION_WHEEL = [
    o for o, w in zip(ORGANISATIONS, ORGANISATION_WEIGHTS, strict=True) for _ in range(w)
]
_TYPE_WHEEL = [t for t, w in TYPES for _ in range(w)]


def _mix(i: int) -> int:
    """A cheap, well-spread hash of ``i`` (splitmix64's finaliser)."""
    z = (i * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)


def organisation_of(i: int) -> int:
    """The organisation event ``i`` belongs to, by the traffic shares."""
    return _ORGANISATION_WHEEL[_mix(i) % len(_ORGANISATION_WHEEL)]


def document(
    i: int, timestamp_ms: int | None = None, organisation_id: int | None = None
) -> dict[str, Any]:
    """Event ``i`` as a producer posts it to ``POST /api/v1/event``."""
    h = _mix(i)
    organisation = organisation_id or organisation_of(i)
    type_id = _TYPE_WHEEL[(h >> 8) % len(_TYPE_WHEEL)]
    endpoint = (h >> 20) % ENDPOINTS_PER_ORGANISATION + 1
    device = organisation * 1_000_000 + endpoint
    doc: dict[str, Any] = {
        "event_type": {"id": type_id},
        "organisation": {"id": organisation},
        "endpoint": {
            "id": device,
            "name": f"tracker-{endpoint}",
            "imei": f"35209900{device:08d}"[-16:],
            "ip_address": f"10.{(device >> 16) & 255}.{(device >> 8) & 255}.{device & 255}",
        },
        "sim": {"id": device, "iccid": f"898830300{device:010d}"},
        "imsi": {"id": device, "imsi": f"90143{device:010d}"},
    }
    if timestamp_ms is not None:
        doc["timestamp"] = format_ms(timestamp_ms)
    country, operator = COUNTRIES[(h >> 40) % len(COUNTRIES)]
    if type_id in (1, 2, 3):
        doc["detail"] = {
            "name": operator,
            "country": {"name": country},
            "pdp_context": {"apn": "em", "rat_type": 6},
        }
    elif type_id == 5:
        doc["detail"] = {
            "name": operator,
            "country": {"name": country},
            "volume": {"total": round((h >> 44) % 10_000 / 100, 2)},
        }
    elif type_id == 10001:
        doc["description"] = "Battery low"
        doc["detail"] = {"battery": (h >> 44) % 20}
    return doc


def provider_record(i: int, timestamp_ms: int) -> dict[str, Any]:
    """Event ``i`` as 1NCE's data streamer sends it (emnify's record shape, the provider's
    own id and organisation)."""
    doc = document(i, timestamp_ms, 1)
    type_id = doc["event_type"]["id"]
    return {
        "id": 700_000_000 + i,
        "timestamp": doc["timestamp"],
        "event_type": {"id": type_id, "description": f"Type {type_id}"},
        "event_severity": {"id": 0, "description": "INFO"},
        "event_source": {"id": 0, "description": "Network"},
        "organisation": {"id": 4711, "name": "1NCE customer"},
        "alert": False,
        "description": doc.get("description", "Event"),
        "endpoint": doc["endpoint"],
        "sim": doc["sim"],
        "imsi": doc["imsi"],
        "user": None,
        "detail": doc.get("detail"),
    }


def event_id(i: int, timestamp_ms: int) -> int:
    """A time-ordered id for event ``i`` (unique while ``i`` grows with time)."""
    low_bits = NODE_BITS + SEQUENCE_BITS
    return ((timestamp_ms - EPOCH_MS) << low_bits) | (i & ((1 << low_bits) - 1))


def new_events(
    documents: list[dict[str, Any]], catalog: Catalog, received_ms: int, names: dict[int, str]
) -> list[NewEvent]:
    """The documents through Herald's own checks (``events.codec``, ``build_event``)."""
    built: list[NewEvent] = []
    for doc in documents:
        event = check(doc)
        if not isinstance(event, Checked):
            raise ValueError(f"the generator made a bad event: {event}")
        organisation_id = doc["organisation"]["id"]
        result = build_event(
            event,
            organisation=OrganisationRef(id=organisation_id, name=names[organisation_id]),
            catalog=catalog,
            received_ms=received_ms,
            internal=True,
            provider="bench",
        )
        if isinstance(result, list):
            raise ValueError(f"the generator made a bad event: {result}")
        built.append(result)
    return built
