"""Request dependencies: the app's services and the authenticated principal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from herald.api.problems import Problem
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
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None or not credentials.credentials:
        raise Problem(401, "Unauthorized", "send Authorization: Bearer <token>", headers=_CHALLENGE)
    try:
        return await services.run(services.auth.authenticate, credentials.credentials)
    except AuthError as exc:
        raise Problem(401, "Unauthorized", str(exc), headers=_CHALLENGE) from exc


def require(permission: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that admits principals holding ``permission``."""

    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not principal.can(permission):
            raise Problem(403, "Forbidden", f"this token lacks the permission {permission!r}")
        return principal

    return check


EventReader = Annotated[Principal, Depends(require("event:read"))]
EventWriter = Annotated[Principal, Depends(require("event:create"))]
