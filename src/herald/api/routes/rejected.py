"""The ingest quarantine: ``/ingest/rejected``, the provider records Herald could not use;
over ``ingest/quarantine.py`` (who may read, retry or discard which records, each in one
of the organisation's query slots).

A page, and a bulk retry, read at most ``HERALD_QUARANTINE_READ_BYTES`` of records (one
record at least; ``X-Next-Cursor`` says where the next page starts), decoded and serialised
off the event loop, so that no answer grows with what a tenant put in its quarantine.
"""

from __future__ import annotations

from collections import Counter
from enum import StrEnum
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query
from starlette.responses import Response

from herald.api.deps import EventReader, ServicesDep, get_principal
from herald.api.intake_schemas import RejectedRecord, RetryAnswer, RetryOutcome
from herald.api.problems import field_problem
from herald.auth import Principal
from herald.ingest import quarantine
from herald.ingest.intake import Outcome
from herald.store.rejections import Rejected, RejectedPage
from herald.timefmt import format_ms

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


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers=headers, media_type=JSON_TYPE)


def _answer(outcome: Outcome) -> dict[str, Any]:
    """What happened to a retried record (its ``rejected_id`` added by the caller)."""
    answer = outcome.as_dict()
    del answer["index"]
    return answer


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
    scope = quarantine.scope_of(principal, organisation)
    if cursor is not None and page != 1:
        raise field_problem(400, "cursor", "not with page: the cursor says where the page starts")
    name = provider.value if provider else None

    def answer() -> tuple[bytes, RejectedPage]:
        found = quarantine.list_page(services, scope, name, page, per_page, cursor)
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

    def answer() -> bytes:
        return orjson.dumps(rejected_json(quarantine.get_one(services, principal, rejected_id)))

    return Response(await services.query(principal, answer), 200, media_type=JSON_TYPE)


@router.post("/ingest/rejected/{rejected_id:int}/retry", responses={200: {"model": RetryOutcome}})
async def retry_one(rejected_id: RejectedId, services: ServicesDep, principal: Caller) -> Response:
    """Ingest a quarantined record again (after a catalogue or Herald update): ``stored``
    (it leaves the quarantine), ``duplicate`` or still ``quarantined`` with the new reasons."""
    outcome = await quarantine.retry_one(services, principal, rejected_id)
    return _json({**_answer(outcome), "rejected_id": rejected_id})


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
    scope = quarantine.scope_of(principal, organisation)
    name = provider.value if provider else None
    retried = await quarantine.retry_oldest(services, principal, scope, name, limit)
    counts = Counter(outcome.status for outcome in retried.outcomes)
    body = {
        "retried": len(retried.outcomes),
        "stored": counts["stored"],
        "duplicates": counts["duplicate"],
        "quarantined": counts["quarantined"],
        "remaining": retried.remaining,
        "unretryable": retried.unretryable,
        "records": [
            {**_answer(outcome), "rejected_id": retried.records[outcome.index].id}
            for outcome in retried.outcomes
        ],
    }
    return _json(body)


@router.delete("/ingest/rejected/{rejected_id:int}", status_code=204)
async def discard(rejected_id: RejectedId, services: ServicesDep, principal: Caller) -> Response:
    """Discard a quarantined record for good."""
    await quarantine.discard(services, principal, rejected_id)
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
