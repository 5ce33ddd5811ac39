"""The ingest quarantine for a caller: read its records, retry or discard them.

Reading takes ``event:read`` (checked by the caller); retrying or discarding a record takes
the ``ingest:<provider>`` permission of its provider, as writing it did. A tenant's token
sees its own organisation's records only; an internal token every organisation's, or the
one it names. Every operation runs in one of the organisation's query slots
(``events/query_slots.py``); a page and a bulk retry read at most
``HERALD_QUARANTINE_READ_BYTES`` of records (one at least). Refusals are ``herald.errors``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from herald.auth import Principal
from herald.errors import Forbidden, NotFound
from herald.ingest import PROVIDERS
from herald.ingest.intake import Outcome, retry_rejected
from herald.services import Services
from herald.store.rejections import Rejected, RejectedPage

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Retried:
    """A bulk retry: the records tried, what became of each, and what is left (of which
    ``unretryable``: kept truncated, never retried)."""

    records: list[Rejected]
    outcomes: list[Outcome]
    remaining: int
    unretryable: int


def scope_of(principal: Principal, organisation: int | None) -> tuple[int, ...] | None:
    """The organisations a read or retry covers: the caller's, or the one it names."""
    scope = principal.organisation_scope
    if organisation is None:
        return scope
    if scope is not None and organisation not in scope:
        raise Forbidden("this token reads only its own organisation's records")
    return (organisation,)


def list_page(
    services: Services,
    scope: tuple[int, ...] | None,
    provider: str | None,
    page: int,
    per_page: int,
    before: int | None,
) -> RejectedPage:
    """Blocking: a page of quarantined records, newest first, at most the read budget."""
    return services.store.quarantine.page(
        scope,
        provider,
        page,
        per_page,
        before=before,
        max_bytes=services.settings.quarantine_read_bytes,
    )


def get_one(services: Services, principal: Principal, rejected_id: int) -> Rejected:
    """Blocking: one of the caller's quarantined records; ``NotFound`` otherwise."""
    found = services.store.quarantine.get(rejected_id, principal.organisation_scope)
    if found is None:
        raise NotFound(f"no rejected record {rejected_id}")
    return found


async def retry_one(services: Services, principal: Principal, rejected_id: int) -> Outcome:
    """Ingest one quarantined record again: ``stored`` (it leaves the quarantine),
    ``duplicate`` or still ``quarantined`` with the new reasons."""

    async def retry() -> Outcome:
        record = await services.run(get_one, services, principal, rejected_id)
        _may_write(principal, record.provider)
        (outcome,) = await retry_rejected(services, principal, [record])
        return outcome

    return await _in_slot(services, principal, retry)


async def retry_oldest(
    services: Services,
    principal: Principal,
    scope: tuple[int, ...] | None,
    provider: str | None,
    limit: int,
) -> Retried:
    """Ingest the oldest quarantined records again, up to ``limit`` and the read budget,
    of every provider the caller may ingest for (or the one named)."""
    providers = [provider] if provider else list(PROVIDERS)
    if provider:
        _may_write(principal, provider)
    allowed = [name for name in providers if principal.can(f"ingest:{name}")]
    if not allowed:
        raise Forbidden("this token holds no ingest:<provider> permission")
    budget = services.settings.quarantine_read_bytes
    store = services.store

    def oldest() -> list[Rejected]:
        records: list[Rejected] = []
        used = 0
        for name in allowed:
            if len(records) >= limit or used >= budget:
                break
            found = store.quarantine.oldest(scope, name, limit - len(records), budget - used)
            records += found
            used += sum(len(record.record) for record in found)
        return records

    def left() -> tuple[int, int]:
        remaining = sum(store.quarantine.count(scope, name) for name in allowed)
        return remaining, sum(store.quarantine.count(scope, name, True) for name in allowed)

    async def retry() -> Retried:
        records = await services.run(oldest)
        outcomes = await retry_rejected(services, principal, records) if records else []
        remaining, unretryable = await services.run(left)
        return Retried(records, outcomes, remaining, unretryable)

    return await _in_slot(services, principal, retry)


async def discard(services: Services, principal: Principal, rejected_id: int) -> None:
    """Discard a quarantined record for good."""

    async def forget() -> None:
        record = await services.run(get_one, services, principal, rejected_id)
        _may_write(principal, record.provider)
        await services.run(services.store.quarantine.release, [record.id])

    await _in_slot(services, principal, forget)


def _may_write(principal: Principal, provider: str) -> None:
    if not principal.can(f"ingest:{provider}"):
        raise Forbidden(f"this token lacks the permission 'ingest:{provider}'")


async def _in_slot(services: Services, principal: Principal, work: Callable[[], Awaitable[T]]) -> T:
    """``work`` in one of the organisation's query slots (a platform token's takes none)."""
    organisation = None if principal.internal else principal.organisation_id
    return await services.query_slots.run(organisation, work)
