"""Application tokens, short-lived JWTs and permissions.

An application token (``hrd_...``) is a long-lived secret; Herald stores only its SHA-256.
``POST /api/v1/authenticate`` trades it for a JWT, as emnify's API does. Either may be sent as
``Authorization: Bearer ...``; both are checked against the token's revocation on every call.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jwt

from herald.audit import AuditLog
from herald.organisations.types import Token
from herald.permissions import PERMISSIONS as PERMISSIONS
from herald.store import Store
from herald.timefmt import now_ms

TOKEN_PREFIX = "hrd_"
JWT_ALGORITHM = "HS256"
JWT_ISSUER = "herald"


class AuthError(Exception):
    """Credentials missing, malformed, expired, forged or revoked.

    ``token`` is the token the credential provably belongs to (revoked, or an expired JWT
    with a valid signature), if any: the failure can be recorded for its organisation.
    """

    def __init__(self, reason: str, token: Token | None = None) -> None:
        super().__init__(reason)
        self.token = token


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a token of one organisation, or an internal (platform) token."""

    token_id: int
    organisation_id: int | None
    permissions: frozenset[str]
    internal: bool

    def can(self, permission: str) -> bool:
        return self.internal or permission in self.permissions

    @property
    def organisation_scope(self) -> tuple[int, ...] | None:
        """The organisations this principal may see; None means all (internal)."""
        if self.internal:
            return None
        return (self.organisation_id,) if self.organisation_id is not None else ()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(
    store: Store,
    *,
    organisation_id: int | None,
    permissions: Sequence[str],
    internal: bool = False,
    name: str = "",
    audit: AuditLog | None = None,
) -> tuple[str, Token]:
    """Create an application token; return the secret (shown once) and its record.

    With ``audit``, the creation is recorded as an event of the token's organisation.
    """
    unknown = sorted(set(permissions) - PERMISSIONS)
    if unknown:
        raise ValueError(f"unknown permission(s): {', '.join(unknown)}")
    if not internal and organisation_id is None:
        raise ValueError("a tenant token needs an organisation")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = store.organisations.create_token(
        token_hash=hash_token(secret),
        prefix=secret[:12],
        name=name,
        organisation_id=None if internal else organisation_id,
        permissions=sorted(PERMISSIONS) if internal else sorted(set(permissions)),
        internal=internal,
    )
    if audit is not None:
        audit.token_created(token)
    return secret, token


def revoke_token(store: Store, token_id: int, audit: AuditLog | None = None) -> Token:
    """Revoke a token (idempotent), recorded through ``audit`` if given; raises NotFound."""
    token = store.organisations.revoke_token(token_id)
    if audit is not None:
        audit.token_revoked(token)
    return token


def _principal(token: Token) -> Principal:
    if token.revoked_ms is not None:
        raise AuthError("token revoked", token)
    return Principal(token.id, token.organisation_id, frozenset(token.permissions), token.internal)


class Authenticator:
    """Checks bearer credentials against the store and signs JWTs."""

    def __init__(
        self,
        store: Store,
        jwt_secret: str,
        jwt_ttl_seconds: int,
        on_failure: Callable[[Token | None, str], None] | None = None,
    ) -> None:
        self._store = store
        self._secret = jwt_secret
        self._ttl = jwt_ttl_seconds
        self._on_failure = on_failure

    def _failed(self, exc: AuthError) -> None:
        if self._on_failure is not None:
            self._on_failure(exc.token, str(exc))

    def exchange(self, application_token: str) -> str:
        """A JWT for a valid application token."""
        try:
            return self._exchange(application_token)
        except AuthError as exc:
            self._failed(exc)
            raise

    def _exchange(self, application_token: str) -> str:
        token = self._store.organisations.find_token(hash_token(application_token))
        if token is None:
            raise AuthError("unknown application token")
        _principal(token)
        issued = now_ms() // 1000
        claims = {
            "iss": JWT_ISSUER,
            "sub": str(token.id),
            "org": token.organisation_id,
            "iat": issued,
            "exp": issued + self._ttl,
        }
        return jwt.encode(claims, self._secret, algorithm=JWT_ALGORITHM)

    def authenticate(self, credential: str) -> Principal:
        """The principal behind a bearer credential (JWT or application token)."""
        try:
            return self._authenticate(credential)
        except AuthError as exc:
            self._failed(exc)
            raise

    def _authenticate(self, credential: str) -> Principal:
        if credential.startswith(TOKEN_PREFIX):
            token = self._store.organisations.find_token(hash_token(credential))
            if token is None:
                raise AuthError("unknown application token")
            return _principal(token)
        try:
            claims = jwt.decode(
                credential,
                self._secret,
                algorithms=[JWT_ALGORITHM],
                issuer=JWT_ISSUER,
                options={"require": ["exp", "iat", "sub", "iss"]},
            )
            token_id = int(claims["sub"])
        except jwt.ExpiredSignatureError as exc:  # signed by us: the token is known
            signer = self._signer(credential)
            raise AuthError("invalid token: Signature has expired", signer) from exc
        except jwt.InvalidSignatureError as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        except jwt.DecodeError as exc:  # not a JWT at all ("Not enough segments"...)
            raise AuthError(
                f"invalid token: expected an application token ({TOKEN_PREFIX}...) or the JWT "
                "that POST /api/v1/authenticate answers"
            ) from exc
        except (jwt.PyJWTError, ValueError) as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        token = self._store.organisations.get_token(token_id)
        if token is None:
            raise AuthError("unknown token")
        return _principal(token)

    def _signer(self, credential: str) -> Token | None:
        """The token of an expired JWT whose signature is still ours."""
        try:
            claims = jwt.decode(
                credential,
                self._secret,
                algorithms=[JWT_ALGORITHM],
                issuer=JWT_ISSUER,
                options={"verify_exp": False},
            )
            return self._store.organisations.get_token(int(claims["sub"]))
        except (jwt.PyJWTError, ValueError, KeyError):
            return None


def jwt_secret(store: Store, configured: str | None) -> str:
    """The configured JWT secret, or one generated once and kept in the database.

    An existing secret is only read, so a server can start on a read-only database.
    """
    if configured:
        return configured
    return store.meta.get("jwt_secret") or store.meta.set_if_absent(
        "jwt_secret", secrets.token_urlsafe(48)
    )
