"""Event documents (``EventIn`` shape) as the reference examples write them."""

from __future__ import annotations

from typing import Any

from herald.simulate.fleet import Device, Organisation
from herald.simulate.geo import Operator
from herald.timefmt import format_ms

NETWORK, POLICY, API = 0, 1, 2
INFO, WARN, CRITICAL = 0, 1, 2


def event(
    type_id: int,
    at_ms: int,
    organisation: Organisation,
    *,
    severity: int,
    source: int,
    description: str,
    alert: bool = False,
    device: Device | None = None,
    detail: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    """One event document; ``device`` adds its endpoint, SIM and IMSI objects."""
    doc: dict[str, Any] = {
        "timestamp": format_ms(at_ms),
        "event_type": {"id": type_id},
        "event_severity": {"id": severity},
        "event_source": {"id": source},
        "organisation": {"id": organisation.id},
        "alert": alert,
        "description": description,
    }
    if device is not None:
        doc["endpoint"] = device.endpoint()
        doc["sim"] = device.sim()
        doc["imsi"] = device.imsi_ref()
    if detail is not None:
        doc["detail"] = detail
    doc.update(extra)
    return doc


def update_location(device: Device, operator: Operator, at_ms: int) -> dict[str, Any]:
    vlr = f"{operator.country.country_code}{operator.mnc}0000{device.index % 97:02d}"
    return event(
        1,
        at_ms,
        device.organisation,
        severity=INFO,
        source=NETWORK,
        device=device,
        description=f"New location received from VLR for IMSI='{device.imsi}', "
        f"now attached to VLR='{vlr}'.",
        detail=operator.as_detail(),
    )


def update_gprs_location(
    device: Device, operator: Operator, at_ms: int, rat: str
) -> dict[str, Any]:
    sgsn = f"{operator.country.country_code}{operator.mnc}1107{device.index % 89:02d}"
    return event(
        2,
        at_ms,
        device.organisation,
        severity=INFO,
        source=NETWORK,
        device=device,
        description=f"New location received from SGSN for IMSI='{device.imsi}', now attached "
        f"to SGSN='{sgsn}', IP='{device.ip_address}', RAT type='{rat}'.",
        detail=operator.as_detail(),
    )


def purge(device: Device, at_ms: int, gprs: bool) -> dict[str, Any]:
    element = "SGSN" if gprs else "VLR"
    return event(
        16 if gprs else 15,
        at_ms,
        device.organisation,
        severity=INFO,
        source=NETWORK,
        device=device,
        description=f"{element} location information has been purged for IMSI='{device.imsi}'.",
    )


def operator_detail(operator: Operator, **more: Any) -> dict[str, Any]:
    """The ``detail`` of a PDP event: the serving network plus the context."""
    return {"id": operator.id, "name": operator.name, "country": operator.country.as_dict(), **more}


def rejected_session(device: Device, at_ms: int, reason: str) -> dict[str, Any]:
    return event(
        3,
        at_ms,
        device.organisation,
        severity=WARN,
        source=POLICY,
        alert=True,
        device=device,
        description=f"PDP Context Request rejected, because {reason}.",
    )


def quota_event(
    type_id: int, device: Device, at_ms: int, description: str, **detail: Any
) -> dict[str, Any]:
    """Quota threshold (18, 20), used up (19, 21), expiry (60): policy control warnings."""
    return event(
        type_id,
        at_ms,
        device.organisation,
        severity=WARN,
        source=POLICY,
        alert=True,
        device=device,
        description=description,
        detail=detail or None,
    )


def sim_status(
    type_id: int, device: Device, at_ms: int, description: str, *, source: int = API, **d: Any
) -> dict[str, Any]:
    """SIM lifecycle (8, 9, 10, 44, 45, 50, 51) and quota assignment (56, 58): API, info."""
    return event(
        type_id,
        at_ms,
        device.organisation,
        severity=INFO,
        source=source,
        device=device,
        description=description,
        detail=d or None,
    )


def transition(old: tuple[int, str], new: tuple[int, str], reason: str) -> dict[str, Any]:
    """The ``detail`` of a SIM status change, as emnify writes it."""
    return {
        "transition": {
            "sim": {
                "status": {
                    "from": {"id": old[0], "description": old[1]},
                    "to": {"id": new[0], "description": new[1]},
                }
            }
        },
        "reason": reason,
    }
