"""Events for a caller: submit a body of them, list a page, read one. Refusals are
``herald.errors`` (a bad body ``Malformed`` or ``Invalid``, an event of another
organisation ``Forbidden``, an event not among the caller's ``NotFound``, a budget spent
``RetryLater``); the store's errors (a query past its time limit...) pass through."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from herald import metrics
from herald.auth import Principal
from herald.errors import NotFound
from herald.events.query_params import build_query, organisation_names
from herald.events.submit import prepare_events, store_events
from herald.events.types import EventPage, EventQuery
from herald.services import Services


@dataclass(frozen=True, slots=True)
class Listed:
    """A page of events, with the query it answers and the echoes of its filter and sort."""

    page: EventPage
    query: EventQuery
    filter_echo: str
    sort_echo: str


async def submit(services: Services, principal: Principal, body: bytes) -> tuple[list[bytes], bool]:
    """Store a body of one event (an object) or a batch (an array), all or none; the stored
    records, and whether the body was a batch. A tenant still inside the wait its event
    budget gave is refused before the body is parsed."""
    organisation = principal.organisation_id
    if organisation is not None and not principal.internal:
        services.budgets.check_waited(organisation)
    built, is_batch = await services.compute(
        prepare_events, services, principal, body, organisation=organisation
    )
    return await store_events(services, built, organisation), is_batch


async def list_events(
    services: Services, principal: Principal, params: Mapping[str, str], **fixed: Any
) -> Listed:
    """The page of the caller's events that ``params`` ask for (``q``, sort, paging,
    cursor), narrowed by ``fixed`` filter attributes (an endpoint's, a SIM's...)."""
    query, filter_echo, sort_echo = build_query(
        params,
        scope=principal.organisation_scope,
        catalog=services.catalog,
        fixed=fixed,
        time_limit=services.settings.query_time_limit_seconds,
        organisation_named=await organisation_names(services, params),
    )
    with metrics.timed_query():
        page = await services.query(principal, services.store.log.query, query)
    return Listed(page, query, filter_echo, sort_echo)


async def get_event(services: Services, principal: Principal, event_id: int) -> bytes:
    """One of the caller's events, as stored; ``NotFound`` otherwise."""
    body = await services.run(services.store.log.get, event_id, principal.organisation_scope)
    if body is None:
        raise NotFound(f"no event {event_id}")
    return body
