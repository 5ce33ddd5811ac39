"""Events submitted to the API: parsed, validated, built and stored.

Parse (orjson), check every event of a batch (the compiled codec, ``events.codec``), and
store all of them in one transaction or none: a batch with any bad event stores nothing and
names the index of each bad one. Provider batches (``ingest/intake.py``) build each record
with ``build_one`` and keep what they can.
Refusals are ``herald.errors`` (``Malformed``, ``Invalid``, ``Forbidden``).
"""

from __future__ import annotations

from typing import Any

import orjson

from herald.auth import Principal
from herald.errors import Forbidden, Invalid, Malformed
from herald.events.codec import Checked, FieldError, OrganisationRef, check_all
from herald.organisations.types import Organisation
from herald.record import NewEvent
from herald.retention import retention_days
from herald.services import Services
from herald.threads import offer_gil
from herald.timefmt import now_ms

_UNRESOLVED = OrganisationRef(id=0, name=None)
_FOREIGN = "this token writes only for its own organisation"


def parse_json(raw: bytes) -> Any:
    """The JSON document of a request body; ``Malformed`` naming the reason if it is not
    JSON."""
    if not raw.strip():
        raise Malformed.at("body", "empty body; send a JSON object or array")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Malformed.at("body", f"malformed JSON: {exc}") from exc


def as_batch(document: Any, max_events: int) -> tuple[list[Any], bool]:
    """The events of a body that is one event (an object) or a batch (an array)."""
    if isinstance(document, dict):
        return [document], False
    if not isinstance(document, list):
        raise Invalid.at("body", "must be an event object or an array of events")
    if not document:
        raise Invalid.at("body", "the batch is empty")
    if len(document) > max_events:
        raise Invalid.at("body", f"a batch holds at most {max_events} events")
    return document, True


def validate(items: list[Any]) -> list[Checked]:
    """Each item checked by the codec; ``Invalid`` naming the index and field of every bad
    one."""
    events: list[Checked] = []
    errors: list[dict[str, Any]] = []
    at_index = len(items) > 1
    for index, result in enumerate(check_all(items)):
        if isinstance(result, Checked):
            events.append(result)
            continue
        at = {"index": index} if at_index else {}
        errors.extend({"field": e.field, "reason": e.reason, **at} for e in result)
    if errors:
        raise _invalid(errors)
    return events


def _invalid(errors: list[dict[str, Any]]) -> Invalid:
    return Invalid(_detail(errors), errors, title="Invalid event")


def _detail(errors: list[dict[str, Any]]) -> str:
    return "; ".join(
        (f"[{e['index']}] " if "index" in e else "") + f"{e['field']}: {e['reason']}"
        for e in errors[:20]
    )


def _organisation_for(
    services: Services, principal: Principal, event: Checked
) -> Organisation | str:
    """The organisation an event is written for, or why it cannot be."""
    named = event.event.organisation.id if event.event.organisation else None
    if not principal.internal:
        if named is not None and named != principal.organisation_id:
            return _FOREIGN
        named = principal.organisation_id
    if named is None:
        return "required: an internal token names the organisation by organisation.id"
    organisation = services.organisation(named)
    if organisation is None:
        return "unknown organisation"
    return organisation


def build_one(
    services: Services,
    principal: Principal,
    event: Checked,
    *,
    received_ms: int,
    provider: str = "api",
    platform: bool = False,
    provider_type: str | None = None,
) -> NewEvent | list[FieldError]:
    """One event checked and completed for the store, or every reason it was refused.

    ``platform``: the platform writes it (a provider adapter), as an internal token does:
    catalogued system codes are then ``internal: true``.
    """
    errors: list[FieldError] = []
    organisation = _organisation_for(services, principal, event)
    retention: float | None = None
    if isinstance(organisation, str):
        errors.append(FieldError("organisation.id", organisation))
        ref = _UNRESOLVED  # still check the rest, to name every bad field
    else:
        ref = OrganisationRef(id=organisation.id, name=organisation.name)
        retention = retention_days(organisation.retention_days, services.settings.retention_days)
    result = services.writer.build(
        event,
        organisation=ref,
        received_ms=received_ms,
        internal=principal.internal or platform,
        provider=provider,
        max_future_ms=int(services.settings.max_future_skew_seconds * 1000),
        provider_type=provider_type,
        retention_days=retention,
    )
    if isinstance(result, list):
        return errors + result
    return errors or result


def build_all(
    services: Services,
    principal: Principal,
    events: list[Checked],
    provider: str = "api",
) -> list[NewEvent]:
    """Every event checked and completed for the store; ``Invalid`` (``Forbidden`` for
    another organisation's) if any fails."""
    received = now_ms()
    built: list[NewEvent] = []
    errors: list[dict[str, Any]] = []
    for index, event in enumerate(events):
        offer_gil(index)
        at = {"index": index} if len(events) > 1 else {}
        result = build_one(services, principal, event, received_ms=received, provider=provider)
        if isinstance(result, list):
            errors.extend({"field": e.field, "reason": e.reason, **at} for e in result)
        else:
            built.append(result)
    if any(e["reason"] == _FOREIGN for e in errors):
        raise Forbidden(_detail(errors), errors)
    if errors:
        raise _invalid(errors)
    return built


def prepare_events(
    services: Services, principal: Principal, raw: bytes
) -> tuple[list[NewEvent], bool]:
    """A request body's events checked and built for the store, and whether it was a batch
    (an array), once taken from the organisation's event budget (a tenant's token: before
    the events are validated); blocking CPU work, for ``Services.compute``."""
    items, is_batch = as_batch(parse_json(raw), services.settings.max_batch_events)
    if principal.organisation_id is not None:
        services.charge(principal, principal.organisation_id, len(items), len(raw))
    return build_all(services, principal, validate(items)), is_batch


async def store_events(
    services: Services, events: list[NewEvent], organisation: int | None = None
) -> list[bytes]:
    """Append in one transaction (on the write threads, in ``organisation``'s turn);
    return the stored records (existing ones for repeats)."""
    appended = await services.write(organisation, services.writer.append, events)
    return appended.records
