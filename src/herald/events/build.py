"""A checked event completed for the store: catalogue checks, defaults, the record and its
canonical bytes.

Herald serialises every event in the emnify/1NCE record shape (``id``, ``timestamp``,
``event_type``, ``event_severity``, ``event_source``, ``organisation``, ``alert``,
``description``, ``endpoint``, ``sim``, ``imsi``, ``user``, ``detail``) and adds what the
platform event API and Stacuity need: ``target``, ``criticality``, ``moniker``, ``internal``,
``payload``, plus the provenance fields ``provider``, ``external_id`` and ``received``.
The record is serialised here, once (``NewEvent.body``, its ``id`` null until the store
assigns one).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import msgspec
import orjson

from herald.catalog import CRITICALITIES, SEVERITIES, SOURCES, Catalog, Scope
from herald.events.codec import (
    MAX_EXTRA_FIELDS,
    TARGET_TYPE,
    Checked,
    EventIn,
    FieldError,
    LevelRef,
    OrganisationRef,
    check,
    is_target_type,
    reference,
)
from herald.record import NewEvent
from herald.retention import too_old, window_start_ms
from herald.timefmt import format_ms

CRITICALITY_FOR_SEVERITY = {2: 1, 1: 3, 0: 5}
"""Criticality (platform event API: 1 critical ... 5 trivial) derived from severity when
absent."""
RESERVED_FIELDS = frozenset({"provider", "external_id", "received", "payload", "provider_type"})
PLATFORM_NAMES = ("tenant_id", "target_entity_type", "target_entity_id")
"""The platform event API's names of an event's organisation and target: read as Herald's
``organisation`` and ``target``, never kept as unknown fields."""
_SET_BY_HERALD = RESERVED_FIELDS | {"internal"}  # unknown fields that would shadow Herald's
# A batch shares one receive time: format it once, not once per event.
_format_received = lru_cache(maxsize=64)(format_ms)


def build_event(
    given: Checked | EventIn,
    *,
    organisation: OrganisationRef,
    catalog: Catalog,
    received_ms: int,
    internal: bool,
    provider: str = "api",
    max_future_ms: int = 5000,
    provider_type: str | None = None,
    retention_days: float | None = None,
) -> NewEvent | list[FieldError]:
    """Check an event against the catalogue and fill in its defaults.

    ``internal``: the platform writes it (an internal token, a provider adapter, Herald
    itself); only then is a catalogued system code ``internal: true``. A tenant may write any
    code, as a custom (``internal: false``) event. ``provider_type`` is the provider's own
    type id or moniker, kept beside Herald's type. ``retention_days``: the organisation's; a
    timestamp older than the retention window is refused (``herald.retention``), as one in
    the future beyond ``max_future_ms`` is. Returns the event ready for the store, or the
    reasons it was refused. An ``EventIn`` Herald made itself (not checked yet) is checked
    first, as a producer's is.
    """
    checked = check(msgspec.to_builtins(given)) if isinstance(given, EventIn) else given
    if isinstance(checked, list):
        return checked
    event = checked.event
    extra = checked.extra
    errors: list[FieldError] = []
    if len(extra) > MAX_EXTRA_FIELDS:
        errors.append(FieldError("body", f"at most {MAX_EXTRA_FIELDS} unknown fields"))
    type_id, moniker = _resolve_type(event, catalog, errors, internal)
    event_type = catalog.get(type_id) if type_id is not None else None

    timestamp_ms = checked.timestamp_ms if checked.timestamp_ms is not None else received_ms
    if timestamp_ms > received_ms + max_future_ms:
        errors.append(FieldError("timestamp", "must not be in the future"))
    elif retention_days is not None and timestamp_ms < window_start_ms(received_ms, retention_days):
        errors.append(FieldError("timestamp", too_old(retention_days)))

    severity = _level(event.event_severity, event_type.default_severity if event_type else None, 0)
    if severity not in SEVERITIES:
        errors.append(FieldError("event_severity.id", f"must be one of {sorted(SEVERITIES)}"))
    # A tenant's event comes through the API: its source is API unless it names one.
    type_source = event_type.default_source if event_type and internal else None
    source = _level(event.event_source, type_source, 2)
    if source not in SOURCES:
        errors.append(FieldError("event_source.id", f"must be one of {sorted(SOURCES)}"))
    platform_target = _platform_names(event, organisation.id, errors)
    if errors or type_id is None:
        return errors

    alert = event.alert
    if alert is None:
        alert = bool(event_type.default_alert) if event_type else False
    criticality = event.criticality
    if not isinstance(criticality, int):  # absent: from severity; null: not applicable
        criticality = 0 if criticality is None else CRITICALITY_FOR_SEVERITY[severity]
    scope = event_type.scope if event_type else Scope.CUSTOM
    target = platform_target or _target(scope, event, organisation.id)
    moniker = moniker or catalog.moniker_for(type_id)
    if moniker is None and provider == "stacuity":
        moniker = provider_type  # a moniker the catalogue does not know (yet): kept as sent

    sent = checked.sent
    record: dict[str, Any] = {
        "id": None,
        "timestamp": format_ms(timestamp_ms),
        "event_type": {"id": type_id, "description": catalog.describe(type_id)},
        "event_severity": {"id": severity, "description": SEVERITIES[severity]},
        "event_source": {"id": source, "description": SOURCES[source]},
        "organisation": {"id": organisation.id, "name": organisation.name},
        "alert": alert,
        "description": event.description
        if event.description is not None
        else catalog.describe(type_id),
        "endpoint": reference("endpoint", event.endpoint, sent) if event.endpoint else None,
        "sim": reference("sim", event.sim, sent) if event.sim else None,
        "imsi": reference("imsi", event.imsi, sent) if event.imsi else None,
        "user": reference("user", event.user, sent) if event.user else None,
        "detail": event.detail,
        "target": target,
        "criticality": {"id": criticality, "description": CRITICALITIES[criticality]},
        "moniker": moniker,
        "internal": internal and event_type is not None,
    }
    if event.payload is not None:
        record["payload"] = {"content_type": event.payload.content_type, "data": event.payload.data}
    for key, value in extra.items():
        if key not in _SET_BY_HERALD:
            record[key] = value
    external_id = str(event.id) if event.id is not None else None
    record["provider"] = provider
    if provider_type is not None:
        record["provider_type"] = provider_type
    record["external_id"] = external_id
    record["received"] = _format_received(received_ms)
    return NewEvent(
        organisation_id=organisation.id,
        timestamp_ms=timestamp_ms,
        received_ms=received_ms,
        type_id=type_id,
        severity=severity,
        source=source,
        alert=alert,
        criticality=criticality,
        provider=provider,
        external_id=external_id,
        record=record,
        body=orjson.dumps(record),
    )


def _target(scope: Scope, event: EventIn, organisation_id: int) -> dict[str, str] | None:
    """The record's ``target``: the event's own, else the entity its type's scope names."""
    if event.target is not None:
        return {"type": event.target.type, "id": event.target.id}
    endpoint_id = event.endpoint.id if event.endpoint else None
    ref: object
    if scope is Scope.ENDPOINT:
        ref = endpoint_id
    elif scope is Scope.SIM:
        ref = event.sim.id if event.sim else None
    elif scope is Scope.USER:
        ref = event.user.id if event.user else None
    elif scope is Scope.ORGANISATION:
        ref = organisation_id
    else:
        ref = None
    if not isinstance(ref, int) and isinstance(endpoint_id, int):
        scope, ref = Scope.ENDPOINT, endpoint_id
    # a scope's name and a decimal id always pass TargetRef's checks
    return {"type": scope.value, "id": str(ref)} if isinstance(ref, int) else None


def _resolve_type(
    event: EventIn, catalog: Catalog, errors: list[FieldError], internal: bool
) -> tuple[int | None, str | None]:
    moniker = None
    if event.moniker is not None:
        known = catalog.by_moniker(event.moniker)
        if known is None:
            errors.append(FieldError("moniker", "unknown moniker"))
            return None, None
        moniker = known.moniker
        if event.event_type is None:
            return known.type_id, moniker
        if event.event_type.id != known.type_id:
            errors.append(FieldError("moniker", f"names type {known.type_id}, not the event_type"))
    if event.event_type is None:
        errors.append(FieldError("event_type", "required (or a moniker)"))
        return None, None
    if internal and not catalog.is_known(event.event_type.id):
        errors.append(
            FieldError("event_type.id", "unknown system event type (custom codes start at 10000)")
        )
        return None, None
    return event.event_type.id, moniker


def _platform_names(
    event: EventIn, organisation_id: int, errors: list[FieldError]
) -> dict[str, str] | None:
    """The platform event API's ``tenant_id`` (must be the organisation written for) and
    ``target_entity_type`` / ``target_entity_id`` (the ``target``, given both or neither)."""
    if event.tenant_id is not None and str(event.tenant_id) != str(organisation_id):
        errors.append(
            FieldError(
                "tenant_id",
                f"must be {organisation_id}, the organisation this event is written for "
                "(or be left out)",
            )
        )
    kind, ref = event.target_entity_type, event.target_entity_id
    if kind is None and ref is None:
        return None
    if event.target is not None:
        errors.append(
            FieldError("target_entity_type", "give target or target_entity_type/_id, not both")
        )
        return None
    if kind is None or ref is None:
        name = "target_entity_type" if kind is None else "target_entity_id"
        errors.append(FieldError(name, "required with the other target_entity_ field"))
        return None
    target = {"type": kind.lower(), "id": str(ref)}
    if not is_target_type(target["type"]):
        errors.append(FieldError("target_entity_type", f"must match {TARGET_TYPE}"))
        return None
    if not 1 <= len(target["id"]) <= 256:
        errors.append(FieldError("target_entity_id", "must be 1 to 256 characters"))
        return None
    return target


def _level(ref: LevelRef | None, default: int | None, fallback: int) -> int:
    if ref is not None:
        return ref.id
    return default if default is not None else fallback
