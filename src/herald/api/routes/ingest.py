"""Provider ingest: each provider's records as its data streamer or event handler sends them.

``POST /ingest/{emnify,1nce,stacuity}`` takes one record or a JSON array, normalises each
into an ``EventIn`` and stores the usable ones in one transaction (``ingest/intake.py``). A
token with ``ingest:<provider>`` writes for its own organisation (an internal token names
one with ``?organisation=``) and may write any catalogue type. A record whose provider id is
already stored is a duplicate, not stored again; a record of an unknown type is stored under
the provider's generic type; a record that cannot be used at all is quarantined (or, when
its organisation's quarantine is full, ``refused`` with the reason: not kept). ``200``
acknowledges the batch and says per index what happened; only a body that is not a batch of
records at all (not JSON, not an object or array) is refused. emnify and 1NCE batches may
also hold usage records (``traffic_type`` 5 data, 6 SMS): kept once per record id, summed
per endpoint and day (``GET /endpoint/{id}/stats/daily``), answered with ``"kind": "usage"``.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from herald.api.deps import ServicesDep, require, require_ingest
from herald.api.intake_schemas import IngestAnswer
from herald.auth import Principal
from herald.ingest.intake import Outcome, ingest_body, organisation_for

router = APIRouter(tags=["ingest"])
JSON_TYPE = "application/json"
EVENT_STATUSES = frozenset({"stored", "duplicate"})


async def _ingest(
    provider: str, request: Request, services: ServicesDep, principal: Principal, org: int | None
) -> Response:
    organisation = await organisation_for(services, principal, org)
    body = await request.body()
    return _answer(await ingest_body(services, principal, organisation, provider, body))


def _answer(outcomes: list[Outcome]) -> Response:
    counts = Counter(outcome.status for outcome in outcomes)
    body = {
        "received": len(outcomes),
        "stored": counts["stored"],
        "duplicates": counts["duplicate"],
        "quarantined": counts["quarantined"],
        "refused": counts["refused"],
        "ids": [o.id for o in outcomes if o.status in EVENT_STATUSES and not o.usage],
        "records": [outcome.as_dict() for outcome in outcomes],
    }
    return Response(orjson.dumps(body), 200, media_type=JSON_TYPE)


OrganisationParam = Annotated[
    int | None,
    Query(ge=1, le=2**53, description="Internal tokens only: the organisation of the records."),
]
_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            JSON_TYPE: {"schema": {"oneOf": [{"type": "object"}, {"type": "array"}]}},
        },
    }
}


@router.post("/ingest/emnify", openapi_extra=_BODY_DOC, responses={200: {"model": IngestAnswer}})
async def ingest_emnify(
    request: Request,
    services: ServicesDep,
    principal: Annotated[Principal, Depends(require_ingest("emnify", secret=True))],
    organisation: OrganisationParam = None,
) -> Response:
    """emnify Data Streamer event and usage records (one, or an array): stored once per
    record id; unusable ones quarantined (``GET /ingest/rejected``). Authenticated by
    ``Authorization: Bearer <token>`` or, as emnify's API callback sends its secret, by the
    ingest credential as the whole ``Authorization`` header."""
    return await _ingest("emnify", request, services, principal, organisation)


@router.post("/ingest/1nce", openapi_extra=_BODY_DOC, responses={200: {"model": IngestAnswer}})
async def ingest_1nce(
    request: Request,
    services: ServicesDep,
    principal: Annotated[Principal, Depends(require_ingest("1nce", basic_auth=True))],
    organisation: OrganisationParam = None,
) -> Response:
    """1NCE Data Streamer event and usage records (an array of up to 3000): stored once per
    record id. Authenticated by ``Authorization: Bearer <token>`` or, as the 1NCE portal
    configures it, HTTP Basic with any user name and the ingest credential as password."""
    return await _ingest("1nce", request, services, principal, organisation)


@router.post("/ingest/stacuity", openapi_extra=_BODY_DOC, responses={200: {"model": IngestAnswer}})
async def ingest_stacuity(
    request: Request,
    services: ServicesDep,
    principal: Annotated[Principal, Depends(require("ingest:stacuity"))],
    organisation: OrganisationParam = None,
) -> Response:
    """Stacuity event-handler envelopes (by moniker, with their scope): stored once per id."""
    return await _ingest("stacuity", request, services, principal, organisation)
