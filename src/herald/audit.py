"""Security-relevant actions recorded as events of the organisation they concern.

Failed authentication is emnify's type 7; the platform's own actions use the Herald block
(2001 token created, 2002 token revoked, 2003 event handler changed). Records name the
token by id and prefix, never by its secret. Recording never fails the action it describes.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from herald.catalog import Catalog
from herald.events.writer import EventWriter
from herald.ids import IdGenerator
from herald.metrics import AUTH_FAILURES
from herald.model import (
    EventIn,
    LevelRef,
    NewEvent,
    OrganisationRef,
    TargetRef,
    TypeRef,
)
from herald.organisations.types import Token
from herald.store import Store, StoreError
from herald.timefmt import now_ms

log = logging.getLogger("herald.audit")

AUTH_FAILED = 7
TOKEN_CREATED = 2001
TOKEN_REVOKED = 2002
HANDLER_CHANGED = 2003
WARN = 1

AUTH_FAILURE_INTERVAL_SECONDS = 60.0
"""At most one failed-authentication event per token and reason in this interval."""


def token_ref(token: Token) -> dict[str, Any]:
    """How a record names a token: id, name and the public prefix."""
    return {"id": token.id, "name": token.name, "prefix": token.prefix}


def security_event(
    store: Store,
    writer: EventWriter,
    organisation_id: int,
    type_id: int,
    description: str,
    detail: dict[str, Any],
    *,
    severity: int | None = None,
) -> NewEvent | None:
    """A platform event of ``organisation_id``; None if the organisation is unknown."""
    organisation = store.organisations.get(organisation_id)
    if organisation is None:
        return None
    built = writer.build(
        EventIn(
            event_type=TypeRef(id=type_id),
            event_severity=LevelRef(id=severity) if severity is not None else None,
            description=description[:4096],
            detail=detail,
            target=TargetRef(type="organisation", id=str(organisation_id)),
        ),
        organisation=OrganisationRef(id=organisation.id, name=organisation.name),
        received_ms=now_ms(),
        internal=True,
        provider="herald",
    )
    if isinstance(built, list):  # the catalogue lacks the type: a packaging error
        log.error("audit: cannot build a type %d event: %s", type_id, built)
        return None
    return built


class AuditLog:
    """Writes security events to the store; each write is its own small transaction."""

    def __init__(
        self,
        store: Store,
        catalog: Catalog | None = None,
        ids: IdGenerator | None = None,
        *,
        enabled: bool = True,
    ):
        self.enabled = enabled
        self._store = store
        self._writer = EventWriter(store, ids or IdGenerator(store.nodes.lease), catalog)
        self._last_failure: dict[tuple[int, str], float] = {}
        self._lock = threading.Lock()

    def record(
        self,
        organisation_id: int | None,
        type_id: int,
        description: str,
        detail: dict[str, Any],
        *,
        severity: int | None = None,
    ) -> None:
        """Append one security event; log (never raise) if the store refuses it."""
        if not self.enabled or organisation_id is None:  # internal tokens: no tenant
            return
        try:
            event = security_event(
                self._store,
                self._writer,
                organisation_id,
                type_id,
                description,
                detail,
                severity=severity,
            )
            if event is not None:
                self._writer.append([event])
        except StoreError:
            log.warning("audit: could not record a type %d event", type_id)

    def auth_failed(self, token: Token | None, reason: str) -> None:
        """Count a failed authentication; record it if the token is known (revoked, expired)."""
        AUTH_FAILURES.inc()
        if token is None or token.organisation_id is None:
            return
        key, now = (token.id, reason), time.monotonic()
        with self._lock:  # a client retrying a dead token must not flood the tenant's log
            last = self._last_failure.get(key)
            if last is not None and now - last < AUTH_FAILURE_INTERVAL_SECONDS:
                return
            if len(self._last_failure) > 10_000:
                self._last_failure.clear()
            self._last_failure[key] = now
        self.record(
            token.organisation_id,
            AUTH_FAILED,
            f"Application authentication failed: {reason}",
            {"token": token_ref(token), "reason": reason},
            severity=WARN,
        )

    def token_created(self, token: Token) -> None:
        self.record(
            token.organisation_id,
            TOKEN_CREATED,
            f"Application token {token.id} created",
            {"token": {**token_ref(token), "permissions": list(token.permissions)}},
        )

    def token_revoked(self, token: Token) -> None:
        self.record(
            token.organisation_id,
            TOKEN_REVOKED,
            f"Application token {token.id} revoked",
            {"token": token_ref(token)},
        )

    def handler_changed(
        self, organisation_id: int, handler_id: int, name: str, action: str, token_id: int
    ) -> None:
        """A handler created, updated, deleted or its secret rotated, by a token."""
        self.record(
            organisation_id,
            HANDLER_CHANGED,
            f"Event handler {name!r} {action}"[:4096],
            {
                "event_handler": {"id": handler_id, "name": name},
                "action": action,
                "token": {"id": token_id},
            },
        )
