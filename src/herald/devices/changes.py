"""Status changes as events: "endpoint 7 went offline" in the organisation's own log.

An organisation opts in (``device_events``); the projector then compares each endpoint's
status before and after every event it folds, in log order, and writes one event of type
``2100 + status`` (Endpoint attached, online, offline, blocked) per change, in the same
transaction as the states and the cursor (the writer's, which ``store.devices.saving``
joins). So a change is written once: a step whose cursor moved meanwhile writes nothing,
and a repeated step writes the same event under the same producer id
(``device-status:<key>:<event>:<status>``, which the log stores once). Folding is order-free: an
event backfilled behind newer ones that leaves the status as it was emits nothing. A
rebuild (``herald db rebuild-device-state``) emits nothing for the log it re-reads
(``quiet_until_seq``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from herald.devices import state as device_state
from herald.devices.state import Status
from herald.model import EndpointRef, EventIn, NewEvent, OrganisationRef, TypeRef
from herald.timefmt import format_ms

if TYPE_CHECKING:
    from herald.events.writer import EventWriter

log = logging.getLogger(__name__)

FIRST_TYPE = 2100  # + the new status: 2100 attached, 2101 online, 2102 offline, 2103 blocked
TYPES = frozenset(FIRST_TYPE + int(status) for status in Status)


@dataclass(frozen=True, slots=True)
class Change:
    """One endpoint's status changed by one folded event."""

    organisation_id: int
    key: str
    before: Status
    after: Status
    cause: device_state.Effect  # the event that changed it
    endpoint: dict[str, Any]  # the endpoint's id and name as its state knows them


def _ref(status: Status) -> dict[str, Any]:
    return {"id": int(status), "description": status.name}


def to_event(
    change: Change, organisation_name: str, writer: EventWriter, received_ms: int
) -> NewEvent | None:
    """The platform event telling of ``change`` (None, logged, if the catalogue refuses it:
    a packaging error)."""
    cause = change.cause
    endpoint = {k: v for k, v in change.endpoint.items() if k in ("id", "name") and v is not None}
    label = endpoint.get("name") or endpoint.get("id") or change.key
    built = writer.build(
        EventIn(
            id=f"device-status:{change.key}:{cause.event_id}:{int(change.after)}"[:128],
            event_type=TypeRef(id=FIRST_TYPE + int(change.after)),
            description=f"Endpoint {label} is {change.after.name} (was {change.before.name})",
            endpoint=EndpointRef(**endpoint) if endpoint else None,
            detail={
                "status": _ref(change.after),
                "previous_status": _ref(change.before),
                "cause": {
                    "id": cause.event_id,
                    "event_type": {"id": cause.type_id},
                    "timestamp": format_ms(cause.timestamp_ms),
                },
            },
        ),
        organisation=OrganisationRef(id=change.organisation_id, name=organisation_name),
        received_ms=received_ms,
        internal=True,
        provider="herald",
    )
    if isinstance(built, list):
        log.error("devices: cannot write the status change of %s: %s", change.key, built)
        return None
    return built
