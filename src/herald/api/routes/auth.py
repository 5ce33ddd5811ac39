"""``POST /api/v1/authenticate``: trade an application token for a JWT."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from herald.api.deps import ServicesDep
from herald.api.problems import Problem
from herald.api.ratelimit import client_key, rate_limit
from herald.auth import AuthError

router = APIRouter(tags=["auth"])


class AuthenticateIn(BaseModel):
    model_config = ConfigDict(strict=True)

    application_token: str = Field(min_length=1, max_length=512)


class AuthenticateOut(BaseModel):
    auth_token: str


@router.post("/authenticate", response_model=AuthenticateOut)
async def authenticate(
    body: AuthenticateIn, services: ServicesDep, request: Request
) -> AuthenticateOut:
    """A JWT for an application token, as emnify's ``/authenticate`` answers."""
    try:
        token = await services.run(services.auth.exchange, body.application_token)
    except AuthError as exc:
        rate_limit(request).take(client_key(request))  # guessing is limited per address
        raise Problem(
            401, "Unauthorized", str(exc), headers={"WWW-Authenticate": "Bearer"}
        ) from exc
    return AuthenticateOut(auth_token=token)
