"""Request dependencies: the app's services and the authenticated principal."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBasic, HTTPBearer
from starlette.requests import HTTPConnection

from herald.api.problems import Problem
from herald.api.ratelimit import client_key, rate_limit, token_key
from herald.auth import TOKEN_PREFIX, AuthError, Principal
from herald.services import Services

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
    credential = credentials.credentials.strip() if credentials else ""
    return await _authenticated(request, services, credential, _NO_BEARER, _CHALLENGE)


_NO_BEARER = "send Authorization: Bearer <token>"


async def _authenticated(
    request: Request, services: Services, credential: str, missing: str, challenge: dict[str, str]
) -> Principal:
    """The principal behind ``credential``, its request taken from its token's rate limit
    (a failed attempt's from its client address's). The credential is never put in an
    answer or a log line."""
    limit = rate_limit(request)
    if not credential:
        limit.take(client_key(request))
        raise Problem(401, "Unauthorized", missing, headers=challenge)
    try:
        principal = await services.run(services.auth.authenticate, credential)
    except AuthError as exc:
        limit.take(client_key(request))
        raise Problem(401, "Unauthorized", str(exc), headers=challenge) from exc
    limit.take(token_key(principal.token_id))
    return principal


class _Documented:
    """A security scheme shown in the OpenAPI document; the header is read by
    ``require_ingest`` (FastAPI's own classes answer a malformed header with a plain 401)."""

    async def __call__(self, request: HTTPConnection) -> None:
        return None


class _BasicDoc(_Documented, HTTPBasic):
    pass


class _SecretDoc(_Documented, APIKeyHeader):
    pass


basic = _BasicDoc(
    scheme_name="ingestBasic",
    description="1NCE Data Streamer: HTTP Basic, any user name, an ingest credential "
    "(`herald ingest-credential create --provider 1nce`) as the password",
    auto_error=False,
)
callback_secret = _SecretDoc(
    name="Authorization",
    scheme_name="emnifyCallbackSecret",
    description="emnify API callback secret: the ingest credential "
    "(`herald ingest-credential create --provider emnify`) as the whole header value",
    auto_error=False,
)
MAX_AUTHORIZATION = 1024  # far above any credential Herald issues (a JWT is ~200 characters)


def _ingest_credential(header: str, *, basic: bool, secret: bool) -> str:
    """The credential in an ``Authorization`` header of an ingest route: ``Bearer <token>``,
    ``Basic base64(user:<token>)`` (``basic``) or the bare ``hrd_...`` token (``secret``).
    Returns "" when there is none; raises a 401 problem for a malformed Basic header."""
    header = header.strip()
    if len(header) > MAX_AUTHORIZATION:
        return ""
    scheme, _, param = header.partition(" ")
    if scheme.lower() == "bearer":
        return param.strip()
    if basic and scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(param.strip(), validate=True).decode("utf-8")
        except (ValueError, binascii.Error, UnicodeDecodeError):
            decoded = ""
        _user, colon, password = decoded.partition(":")
        if not colon or not password.strip():
            raise Problem(
                401,
                "Unauthorized",
                "malformed Basic credentials: expected base64 of <user>:<ingest credential>",
                headers=_BASIC_CHALLENGE,
            )
        return password.strip()
    if secret and header.startswith(TOKEN_PREFIX) and " " not in header:
        return header
    return ""


_BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="herald", charset="UTF-8"'}


def require_ingest(
    provider: str, *, basic_auth: bool = False, secret: bool = False
) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting principals with ``ingest:<provider>``, authenticated the way
    the provider's streamer sends: Bearer always, HTTP Basic (``basic_auth``, 1NCE) or the
    bare callback secret (``secret``, emnify)."""
    permission = f"ingest:{provider}"
    forms = ["Bearer <token>"]
    if basic_auth:
        forms.append("Basic base64(<user>:<ingest credential>)")
    if secret:
        forms.append("<ingest credential> (the API callback secret)")
    missing = "send Authorization: " + " or ".join(forms)
    challenge = _BASIC_CHALLENGE if basic_auth else _CHALLENGE

    async def check(request: Request, services: Services) -> Principal:
        header = request.headers.get("authorization", "")
        try:
            credential = _ingest_credential(header, basic=basic_auth, secret=secret)
        except Problem:
            rate_limit(request).take(client_key(request))
            raise
        principal = await _authenticated(request, services, credential, missing, challenge)
        if not principal.can(permission):
            raise Problem(403, "Forbidden", f"this token lacks the permission {permission!r}")
        return principal

    # The unused parameters put the accepted schemes in the OpenAPI document.
    async def by_basic(
        request: Request,
        services: ServicesDep,
        _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        _basic: Annotated[None, Depends(basic)],
    ) -> Principal:
        return await check(request, services)

    async def by_secret(
        request: Request,
        services: ServicesDep,
        _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        _secret: Annotated[None, Depends(callback_secret)],
    ) -> Principal:
        return await check(request, services)

    if basic_auth and secret:
        raise ValueError("one provider form per route")
    if basic_auth:
        return by_basic
    if secret:
        return by_secret
    return require(permission)


def require(permission: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that admits principals holding ``permission``."""

    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not principal.can(permission):
            raise Problem(403, "Forbidden", f"this token lacks the permission {permission!r}")
        return principal

    return check


EventReader = Annotated[Principal, Depends(require("event:read"))]
EventWriter = Annotated[Principal, Depends(require("event:create"))]
