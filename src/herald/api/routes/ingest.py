"""Provider ingest: each provider's records as its data streamer or event handler sends them.

``POST /ingest/{emnify,1nce,stacuity}`` takes one record or a JSON array, normalises each
into an ``EventIn``, and stores the batch in one transaction. A token with
``ingest:<provider>`` writes for its own organisation (an internal token names one with
``?organisation=``) and may write any catalogue type. A record whose provider id is
already stored is acknowledged and not stored again. ``200`` is the acknowledgement.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from herald.api.deps import ServicesDep, require
from herald.api.problems import Problem, field_problem
from herald.api.writing import build_all, parse_json, validate
from herald.auth import Principal
from herald.ingest import PROVIDERS, Normaliser, RecordError
from herald.ingest.stacuity import TEST_MESSAGE

router = APIRouter(tags=["ingest"])
JSON_TYPE = "application/json"


def _batch(document: Any, max_records: int) -> list[Any]:
    items = document if isinstance(document, list) else [document]
    if not items:
        raise field_problem(422, "body", "the batch is empty")
    if len(items) > max_records:
        raise field_problem(422, "body", f"a batch holds at most {max_records} records")
    return items


def _normalise(items: list[Any], normalise: Normaliser, organisation: int | None) -> list[Any]:
    events: list[Any] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            event = normalise(item)
        except RecordError as exc:
            at = {"index": index} if len(items) > 1 else {}
            errors.append({"field": exc.field, "reason": exc.reason, **at})
            continue
        if organisation is not None:
            event["organisation"] = {"id": organisation}
        events.append(event)
    if errors:
        detail = "; ".join(
            (f"[{e['index']}] " if "index" in e else "") + f"{e['field']}: {e['reason']}"
            for e in errors[:20]
        )
        raise Problem(422, "Invalid record", detail, errors)
    return events


def _organisation(principal: Principal, organisation: int | None) -> int | None:
    """The organisation named for an internal token; a tenant token's own is implied."""
    if principal.internal:
        if organisation is None:
            raise field_problem(422, "organisation", "an internal token names the organisation")
        return organisation
    if organisation is not None and organisation != principal.organisation_id:
        raise Problem(403, "Forbidden", "an ingest token writes only for its own organisation")
    return None


async def _ingest(
    provider: str, request: Request, services: ServicesDep, principal: Principal, org: int | None
) -> Response:
    organisation = _organisation(principal, org)
    document = parse_json(await request.body())
    if provider == "stacuity" and document == TEST_MESSAGE:
        return _answer(0, 0, [])
    items = _batch(document, services.settings.ingest_max_batch_records)
    events = validate(_normalise(items, PROVIDERS[provider], organisation))
    built = build_all(services, principal, events, provider, allow_system_types=True)
    fresh = services.ids.next_ids(len(built))
    stored = await services.run(services.store.append, built, fresh)
    ids = [int(orjson.loads(body)["id"]) for body in stored]
    duplicates = sum(1 for stored_id, new_id in zip(ids, fresh, strict=True) if stored_id != new_id)
    return _answer(len(ids), duplicates, ids)


def _answer(received: int, duplicates: int, ids: list[int]) -> Response:
    body = {"received": received, "stored": received - duplicates, "duplicates": duplicates}
    return Response(orjson.dumps({**body, "ids": ids}), 200, media_type=JSON_TYPE)


OrganisationParam = Annotated[
    int | None,
    Query(
        ge=1,
        le=2**53,  # what an event's organisation.id holds
        description="Internal tokens only: the organisation the records belong to.",
    ),
]
_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            JSON_TYPE: {"schema": {"oneOf": [{"type": "object"}, {"type": "array"}]}},
        },
    }
}


@router.post("/ingest/emnify", openapi_extra=_BODY_DOC)
async def ingest_emnify(
    request: Request,
    services: ServicesDep,
    principal: Annotated[Principal, Depends(require("ingest:emnify"))],
    organisation: OrganisationParam = None,
) -> Response:
    """emnify Data Streamer event records (one, or an array): stored once per record id."""
    return await _ingest("emnify", request, services, principal, organisation)


@router.post("/ingest/1nce", openapi_extra=_BODY_DOC)
async def ingest_1nce(
    request: Request,
    services: ServicesDep,
    principal: Annotated[Principal, Depends(require("ingest:1nce"))],
    organisation: OrganisationParam = None,
) -> Response:
    """1NCE Data Streamer event records (an array of up to 3000): stored once per record id."""
    return await _ingest("1nce", request, services, principal, organisation)


@router.post("/ingest/stacuity", openapi_extra=_BODY_DOC)
async def ingest_stacuity(
    request: Request,
    services: ServicesDep,
    principal: Annotated[Principal, Depends(require("ingest:stacuity"))],
    organisation: OrganisationParam = None,
) -> Response:
    """Stacuity event-handler envelopes (by moniker, with their scope): stored once per id."""
    return await _ingest("stacuity", request, services, principal, organisation)
