"""The ingest quarantine: ``/ingest/rejected``, the provider records Herald could not use.

Reading takes ``event:read``; retrying or discarding a record takes the ``ingest:<provider>``
permission of its provider, as writing it did (a streamer's own token may retry). A tenant
token sees its own organisation's records only; an internal token sees every
organisation's, or the one ``?organisation=`` names.
"""

from __future__ import annotations

from collections import Counter
from enum import StrEnum
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query
from starlette.responses import Response

from herald.api.deps import EventReader, ServicesDep, get_principal
from herald.api.intake import Outcome, rejected_json, retry_rejected
from herald.api.intake_schemas import RejectedRecord, RetryAnswer, RetryOutcome
from herald.api.problems import Problem
from herald.auth import Principal
from herald.ingest import PROVIDERS
from herald.store.rejections import Rejected

router = APIRouter(tags=["ingest"])
JSON_TYPE = "application/json"
MAX_RETRY = 1000


class ProviderName(StrEnum):
    EMNIFY = "emnify"
    ONECE = "1nce"
    STACUITY = "stacuity"


RejectedId = Annotated[int, Path(ge=1, le=2**63 - 1)]
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


async def _one(services: ServicesDep, principal: Principal, rejected_id: int) -> Rejected:
    found = await services.run(
        services.store.get_rejected, rejected_id, principal.organisation_scope
    )
    if found is None:
        raise Problem(404, "Not found", f"no rejected record {rejected_id}")
    return found


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
) -> Response:
    """Quarantined provider records, newest first, with why and the record as sent;
    ``X-Total-Count`` counts them."""
    scope = _scope(principal, organisation)
    records, total = await services.run(
        services.store.list_rejected, scope, provider.value if provider else None, page, per_page
    )
    headers = {
        "X-Total-Count": str(total),
        "X-Total-Pages": str(max(1, -(-total // per_page))),
        "X-Current-Page": str(page),
        "X-Count-Per-Page": str(per_page),
    }
    return _json([rejected_json(record) for record in records], headers=headers)


@router.get("/ingest/rejected/{rejected_id:int}", responses={200: {"model": RejectedRecord}})
async def get_rejected(
    rejected_id: RejectedId, services: ServicesDep, principal: EventReader
) -> Response:
    """One quarantined record; 404 if absent or another organisation's."""
    return _json(rejected_json(await _one(services, principal, rejected_id)))


@router.post("/ingest/rejected/{rejected_id:int}/retry", responses={200: {"model": RetryOutcome}})
async def retry_one(rejected_id: RejectedId, services: ServicesDep, principal: Caller) -> Response:
    """Ingest a quarantined record again (after a catalogue or Herald update): ``stored``
    (it leaves the quarantine), ``duplicate`` or still ``quarantined`` with the new reasons."""
    record = await _one(services, principal, rejected_id)
    _may_write(principal, record.provider)
    (outcome,) = await retry_rejected(services, principal, [record])
    return _json(_retried([record], [outcome])[0])


@router.post("/ingest/rejected/retry", responses={200: {"model": RetryAnswer}})
async def retry_all(
    services: ServicesDep,
    principal: Caller,
    provider: ProviderParam = None,
    organisation: OrganisationParam = None,
    limit: Annotated[int, Query(ge=1, le=MAX_RETRY)] = 500,
) -> Response:
    """Ingest the oldest quarantined records again, up to ``limit``, of every provider the
    token may ingest for (or the one named); the answer counts what happened."""
    scope = _scope(principal, organisation)
    providers = [provider.value] if provider else list(PROVIDERS)
    if provider:
        _may_write(principal, provider.value)
    allowed = [name for name in providers if principal.can(f"ingest:{name}")]
    if not allowed:
        raise Problem(403, "Forbidden", "this token holds no ingest:<provider> permission")
    records: list[Rejected] = []
    for name in allowed:
        records += await services.run(
            services.store.oldest_rejected, scope, name, limit - len(records)
        )
        if len(records) >= limit:
            break
    outcomes = await retry_rejected(services, principal, records) if records else []
    counts = Counter(outcome.status for outcome in outcomes)
    left = 0
    for name in allowed:
        left += (await services.run(services.store.list_rejected, scope, name, 1, 1))[1]
    body = {
        "retried": len(outcomes),
        "stored": counts["stored"],
        "duplicates": counts["duplicate"],
        "quarantined": counts["quarantined"],
        "remaining": left,
        "records": _retried(records, outcomes),
    }
    return _json(body)


@router.delete("/ingest/rejected/{rejected_id:int}", status_code=204)
async def discard(rejected_id: RejectedId, services: ServicesDep, principal: Caller) -> Response:
    """Discard a quarantined record for good."""
    record = await _one(services, principal, rejected_id)
    _may_write(principal, record.provider)
    await services.run(services.store.release_rejected, [record.id])
    return Response(status_code=204)
