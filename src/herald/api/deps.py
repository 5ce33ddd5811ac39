"""Request dependencies: the app's services and the authenticated principal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from herald.api.problems import Problem
from herald.api.ratelimit import client_key, rate_limit, token_key
from herald.api.services import Services
from herald.auth import AuthError, Principal

bearer = HTTPBearer(
    auto_error=False, description="An application token or the JWT from /authenticate"
)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


async def get_services(request: Request) -> Services:
    """The app's services (async: a sync dependency would cost a worker thread per request)."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_principal(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The authenticated caller, its request taken from its token's rate limit (a failed
    attempt's from its client address's)."""
    limit = rate_limit(request)
    credential = credentials.credentials.strip() if credentials else ""
    if not credential:
        limit.take(client_key(request))
        raise Problem(401, "Unauthorized", "send Authorization: Bearer <token>", headers=_CHALLENGE)
    try:
        principal = await services.run(services.auth.authenticate, credential)
    except AuthError as exc:
        limit.take(client_key(request))
        raise Problem(401, "Unauthorized", str(exc), headers=_CHALLENGE) from exc
    limit.take(token_key(principal.token_id))
    return principal


def require(permission: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that admits principals holding ``permission``."""

    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not principal.can(permission):
            raise Problem(403, "Forbidden", f"this token lacks the permission {permission!r}")
        return principal

    return check


EventReader = Annotated[Principal, Depends(require("event:read"))]
EventWriter = Annotated[Principal, Depends(require("event:create"))]
