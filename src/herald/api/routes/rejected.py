"""The ingest quarantine: ``/ingest/rejected``, the provider records Herald could not use.

Reading takes ``event:read``; retrying or discarding a record takes the ``ingest:<provider>``
permission of its provider, as writing it did (a streamer's own token may retry). A tenant
token sees its own organisation's records only; an internal token sees every
organisation's, or the one ``?organisation=`` names.

Every route reads records in one of the organisation's query slots (``events/query_slots.py``) and
decodes and serialises them off the event loop; a page, and a bulk retry, read at most
``HERALD_QUARANTINE_READ_BYTES`` of records (one record at least; ``X-Next-Cursor`` says
where the next page starts), so that no answer grows with what a tenant put in its
quarantine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import APIRouter, Depends, Path, Query
from starlette.responses import Response

from herald.api.deps import EventReader, ServicesDep, get_principal
from herald.api.intake_schemas import RejectedRecord, RetryAnswer, RetryOutcome
from herald.api.problems import Problem, field_problem
from herald.auth import Principal
from herald.ingest import PROVIDERS
from herald.ingest.intake import Outcome, retry_rejected
from herald.services import Services
from herald.store.rejections import Rejected, RejectedPage
from herald.timefmt import format_ms

T = TypeVar("T")
router = APIRouter(tags=["ingest"])
JSON_TYPE = "application/json"
MAX_RETRY = 1000


class ProviderName(StrEnum):
    EMNIFY = "emnify"
    ONECE = "1nce"
    STACUITY = "stacuity"


RejectedId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Cursor = Annotated[
    int | None,
    Query(
        ge=1,
        le=2**63 - 1,
        description="Where the page starts: the X-Next-Cursor of the page before (not with page).",
    ),
]
ProviderParam = Annotated[ProviderName | None, Query(description="Only this provider's records.")]
Caller = Annotated[Principal, Depends(get_principal)]
"""Retrying or discarding checks the record's ``ingest:<provider>`` permission itself."""
OrganisationParam = Annotated[
    int | None, Query(ge=1, le=2**53, description="Internal tokens: one organisation's records.")
]


def _scope(principal: Principal, organisation: int | None) -> tuple[int, ...] | None:
    scope = principal.organisation_scope
    if organisation is None:
        return scope
    if scope is not None and organisation not in scope:
        raise Problem(403, "Forbidden", "this token reads only its own organisation's records")
    return (organisation,)


def _may_write(principal: Principal, provider: str) -> None:
    if not principal.can(f"ingest:{provider}"):
        raise Problem(403, "Forbidden", f"this token lacks the permission 'ingest:{provider}'")


async def _in_slot(services: Services, principal: Principal, work: Callable[[], Awaitable[T]]) -> T:
    """``work`` in one of the organisation's query slots (a platform token's takes none)."""
    organisation = None if principal.internal else principal.organisation_id
    return await services.query_slots.run(organisation, work)


def _found(found: Rejected | None, rejected_id: int) -> Rejected:
    if found is None:
        raise Problem(404, "Not found", f"no rejected record {rejected_id}")
    return found


async def _one(services: Services, principal: Principal, rejected_id: int) -> Rejected:
    found = await services.run(
        services.store.get_rejected, rejected_id, principal.organisation_scope
    )
    return _found(found, rejected_id)


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers=headers, media_type=JSON_TYPE)


def _retried(records: list[Rejected], outcomes: list[Outcome]) -> list[dict[str, Any]]:
    """Per record: its quarantine id, what happened, and the event id once stored."""
    answers = []
    for outcome in outcomes:
        answer = outcome.as_dict()
        del answer["index"]
        answer["rejected_id"] = records[outcome.index].id
        answers.append(answer)
    return answers


@router.get("/ingest/rejected", responses={200: {"model": list[RejectedRecord]}})
async def list_rejected(
    services: ServicesDep,
    principal: EventReader,
    provider: ProviderParam = None,
    organisation: OrganisationParam = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Cursor = None,
) -> Response:
    """Quarantined provider records, newest first, with why and the record as sent;
    ``X-Total-Count`` counts them. A page stops at ``HERALD_QUARANTINE_READ_BYTES`` of
    records (one at least): ``X-Next-Cursor``, when more follow, is the next page's
    ``cursor``."""
    scope = _scope(principal, organisation)
    if cursor is not None and page != 1:
        raise field_problem(400, "cursor", "not with page: the cursor says where the page starts")
    name = provider.value if provider else None
    read_bytes = services.settings.quarantine_read_bytes

    def answer() -> tuple[bytes, RejectedPage]:
        found = services.store.list_rejected(
            scope, name, page, per_page, before=cursor, max_bytes=read_bytes
        )
        return orjson.dumps([rejected_json(record) for record in found.records]), found

    body, found = await services.query(principal, answer)
    headers = {
        "X-Total-Count": str(found.total),
        "X-Total-Pages": str(max(1, -(-found.total // per_page))),
        "X-Current-Page": str(page),
        "X-Count-Per-Page": str(per_page),
    }
    if found.next_before is not None:
        headers["X-Next-Cursor"] = str(found.next_before)
    return Response(body, 200, headers=headers, media_type=JSON_TYPE)


@router.get("/ingest/rejected/{rejected_id:int}", responses={200: {"model": RejectedRecord}})
async def get_rejected(
    rejected_id: RejectedId, services: ServicesDep, principal: EventReader
) -> Response:
    """One quarantined record; 404 if absent or another organisation's."""
    scope = principal.organisation_scope

    def answer() -> bytes:
        found = _found(services.store.get_rejected(rejected_id, scope), rejected_id)
        return orjson.dumps(rejected_json(found))

    return Response(await services.query(principal, answer), 200, media_type=JSON_TYPE)


@router.post("/ingest/rejected/{rejected_id:int}/retry", responses={200: {"model": RetryOutcome}})
async def retry_one(rejected_id: RejectedId, services: ServicesDep, principal: Caller) -> Response:
    """Ingest a quarantined record again (after a catalogue or Herald update): ``stored``
    (it leaves the quarantine), ``duplicate`` or still ``quarantined`` with the new reasons."""

    async def retry() -> tuple[Rejected, Outcome]:
        record = await _one(services, principal, rejected_id)
        _may_write(principal, record.provider)
        (outcome,) = await retry_rejected(services, principal, [record])
        return record, outcome

    record, outcome = await _in_slot(services, principal, retry)
    return _json(_retried([record], [outcome])[0])


@router.post("/ingest/rejected/retry", responses={200: {"model": RetryAnswer}})
async def retry_all(
    services: ServicesDep,
    principal: Caller,
    provider: ProviderParam = None,
    organisation: OrganisationParam = None,
    limit: Annotated[int, Query(ge=1, le=MAX_RETRY)] = 500,
) -> Response:
    """Ingest the oldest quarantined records again, up to ``limit`` and at most
    ``HERALD_QUARANTINE_READ_BYTES`` of them, of every provider the token may ingest for (or
    the one named); the answer counts what happened. Records kept truncated are not
    retried (``unretryable`` counts them, within ``remaining``)."""
    scope = _scope(principal, organisation)
    providers = [provider.value] if provider else list(PROVIDERS)
    if provider:
        _may_write(principal, provider.value)
    allowed = [name for name in providers if principal.can(f"ingest:{name}")]
    if not allowed:
        raise Problem(403, "Forbidden", "this token holds no ingest:<provider> permission")
    budget = services.settings.quarantine_read_bytes
    store = services.store

    def oldest() -> list[Rejected]:
        records: list[Rejected] = []
        used = 0
        for name in allowed:
            if len(records) >= limit or used >= budget:
                break
            found = store.oldest_rejected(scope, name, limit - len(records), budget - used)
            records += found
            used += sum(len(record.record) for record in found)
        return records

    def left() -> tuple[int, int]:
        remaining = sum(store.count_rejected(scope, name) for name in allowed)
        return remaining, sum(store.count_rejected(scope, name, True) for name in allowed)

    async def retry() -> tuple[list[Rejected], list[Outcome], tuple[int, int]]:
        records = await services.run(oldest)
        outcomes = await retry_rejected(services, principal, records) if records else []
        return records, outcomes, await services.run(left)

    records, outcomes, (remaining, unretryable) = await _in_slot(services, principal, retry)
    counts = Counter(outcome.status for outcome in outcomes)
    body = {
        "retried": len(outcomes),
        "stored": counts["stored"],
        "duplicates": counts["duplicate"],
        "quarantined": counts["quarantined"],
        "remaining": remaining,
        "unretryable": unretryable,
        "records": _retried(records, outcomes),
    }
    return _json(body)


@router.delete("/ingest/rejected/{rejected_id:int}", status_code=204)
async def discard(rejected_id: RejectedId, services: ServicesDep, principal: Caller) -> Response:
    """Discard a quarantined record for good."""

    async def forget() -> None:
        record = await _one(services, principal, rejected_id)
        _may_write(principal, record.provider)
        await services.run(services.store.release_rejected, [record.id])

    await _in_slot(services, principal, forget)
    return Response(status_code=204)


def rejected_json(record: Rejected) -> dict[str, Any]:
    """A quarantined record as the API serves it: its bytes inline, as the provider sent them,
    with their size and sha256; a record kept truncated has ``record`` null and its first
    bytes as text in ``record_prefix``."""
    body: dict[str, Any] = {
        "id": record.id,
        "organisation": {"id": record.organisation_id},
        "provider": record.provider,
        "received": format_ms(record.received_ms),
        "attempted": format_ms(record.attempted_ms),
        "attempts": record.attempts,
        "errors": record.errors,
        "size": record.size,
        "sha256": record.digest,
        "truncated": record.truncated,
    }
    if record.truncated:
        body["record"] = None
        body["record_prefix"] = record.record.decode("utf-8", "replace")
    else:
        body["record"] = orjson.Fragment(record.record)
    return body
