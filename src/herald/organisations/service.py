"""Organisations for a caller: the ones it may read, and whether an organisation's endpoints'
status changes are written as events. One outside the caller's is ``NotFound``."""

from __future__ import annotations

from herald.auth import Principal
from herald.errors import Forbidden, Invalid, NotFound
from herald.organisations.types import Organisation
from herald.services import Services
from herald.store import NotFound as Missing


def acting_for(services: Services, principal: Principal, named: int | None) -> int:
    """The organisation a caller makes something for (a body's ``organisation_id``): a
    tenant's own (naming another is ``Forbidden``), or the one an internal token must name."""
    if not principal.internal:
        if named is not None and named != principal.organisation_id:
            raise Forbidden.at("organisation_id", "this token acts only for its own")
        assert principal.organisation_id is not None
        return principal.organisation_id
    if named is None:
        raise Invalid.at("organisation_id", "required with an internal token")
    if services.organisation(named) is None:
        raise Invalid.at("organisation_id", "unknown organisation")
    return named


async def visible(services: Services, principal: Principal) -> list[Organisation]:
    """The organisations the caller may read, by id: its own, or every one (internal)."""
    scope = principal.organisation_scope
    organisations = await services.run(services.store.organisations.all)
    return [o for o in sorted(organisations, key=lambda o: o.id) if scope is None or o.id in scope]


async def get(services: Services, principal: Principal, organisation_id: int) -> Organisation:
    """One of the caller's organisations."""
    _own(principal, organisation_id)
    organisation = await services.run(services.store.organisations.get, organisation_id)
    if organisation is None:
        raise _not_found(organisation_id)
    return organisation


async def set_device_events(
    services: Services, principal: Principal, organisation_id: int, enabled: bool
) -> Organisation:
    """Opt the organisation in (or out): its endpoints' status changes from now on are
    written to its log as events."""
    _own(principal, organisation_id)
    try:
        return await services.run(
            services.store.organisations.set_device_events, organisation_id, enabled
        )
    except Missing:
        raise _not_found(organisation_id) from None


def _own(principal: Principal, organisation_id: int) -> None:
    scope = principal.organisation_scope
    if scope is not None and organisation_id not in scope:
        raise _not_found(organisation_id)


def _not_found(organisation_id: int) -> NotFound:
    return NotFound(f"no organisation {organisation_id}")
