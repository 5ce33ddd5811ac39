"""What every request handler needs, built once per app by the lifespan."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import anyio.to_thread

from herald.audit import AuditLog
from herald.auth import Authenticator
from herald.catalog import Catalog
from herald.config import Settings
from herald.ids import IdGenerator
from herald.store import Organisation, Store

T = TypeVar("T")


@dataclass
class Services:
    settings: Settings
    store: Store
    auth: Authenticator
    catalog: Catalog
    ids: IdGenerator
    audit: AuditLog
    _organisations: dict[int, Organisation] = field(default_factory=dict)

    async def run(self, work: Callable[..., T], *args: object) -> T:
        """Run blocking store work in a worker thread, off the event loop."""
        return await anyio.to_thread.run_sync(work, *args)

    def organisation(self, organisation_id: int) -> Organisation | None:
        """An organisation by id (cached: organisations are created, never renamed)."""
        known = self._organisations.get(organisation_id)
        if known is None:
            known = self.store.get_organisation(organisation_id)
            if known is not None:
                self._organisations[organisation_id] = known
        return known
