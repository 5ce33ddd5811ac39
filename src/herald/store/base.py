"""The Store protocol and the plain records it takes and returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from herald.model import NewEvent


@dataclass(frozen=True, slots=True)
class Organisation:
    id: int
    name: str
    created_ms: int


@dataclass(frozen=True, slots=True)
class Token:
    """An application token as stored: never the secret itself, only its hash."""

    id: int
    organisation_id: int | None
    name: str
    prefix: str
    permissions: tuple[str, ...]
    internal: bool
    created_ms: int
    revoked_ms: int | None


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a query selects; empty tuples select everything."""

    organisation_ids: tuple[int, ...] | None = None  # None: every organisation (internal)
    type_ids: tuple[int, ...] = ()
    severities: tuple[int, ...] = ()
    sources: tuple[int, ...] = ()
    criticalities: tuple[int, ...] = ()
    alert: bool | None = None
    from_ms: int | None = None
    until_ms: int | None = None
    endpoint_ids: tuple[int, ...] = ()
    endpoint_names: tuple[str, ...] = ()
    sim_ids: tuple[int, ...] = ()
    user_ids: tuple[int, ...] = ()
    usernames: tuple[str, ...] = ()
    iccids: tuple[str, ...] = ()
    imsis: tuple[str, ...] = ()
    imeis: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    target_types: tuple[str, ...] = ()
    target_ids: tuple[str, ...] = ()
    monikers: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()  # substring match, any of them
    description: str | None = None  # substring match


SORT_COLUMNS = {
    "id": "id",
    "timestamp": "ts",
    "received": "received",
    "source": "source",
    "severity": "severity",
    "alert": "alert",
    "criticality": "criticality",
    "organisation": "organisation_id",
    "user": "user_id",
    "endpoint": "endpoint_id",
    "tags": "tags",
    "ip_address": "ip_address",
    "iccid": "iccid",
    "imsi": "imsi",
    "type": "type_id",
}
"""Public sort field -> column."""


@dataclass(frozen=True, slots=True)
class SortKey:
    field: str
    descending: bool


DEFAULT_SORT = (SortKey("timestamp", True),)


@dataclass(frozen=True, slots=True)
class EventQuery:
    """A page of events: by page number, or by an opaque keyset cursor (no counting)."""

    filter: EventFilter = field(default_factory=EventFilter)
    sort: tuple[SortKey, ...] = DEFAULT_SORT
    page: int = 1
    per_page: int = 100
    cursor: str | None = None
    count: bool = True


@dataclass(frozen=True, slots=True)
class EventPage:
    """Serialised records (JSON bytes, in order), the total if counted, the next cursor."""

    items: list[bytes]
    total: int | None
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One event as a log reader (delivery, live stream) sees it."""

    seq: int
    organisation_id: int
    type_id: int
    body: bytes


class Store(Protocol):
    """What every backend offers; the contract suite in tests/store runs against each."""

    def migrate(self) -> None:
        """Create or upgrade the schema."""

    def close(self) -> None: ...

    # -- events ---------------------------------------------------------------
    def append(self, events: Sequence[NewEvent], ids: Sequence[int]) -> list[bytes]:
        """Store events in one transaction; return each stored record in order.

        An event whose (organisation, provider, external_id) is already stored is not
        stored again: the record already stored is returned in its place.
        """

    def query(self, query: EventQuery) -> EventPage: ...

    def get_event(self, event_id: int, organisation_ids: tuple[int, ...] | None) -> bytes | None:
        """One record, or None if absent or not in ``organisation_ids``."""

    def read_log(
        self, after_seq: int, limit: int, organisation_ids: tuple[int, ...] | None = None
    ) -> list[LogEntry]:
        """Events committed after ``after_seq``, in commit order."""

    def last_seq(self) -> int: ...

    def purge(self, before_ms: int, chunk: int = 10_000) -> int:
        """Delete events older than ``before_ms``; return how many."""

    # -- organisations and tokens ---------------------------------------------
    def create_organisation(
        self, name: str, organisation_id: int | None = None
    ) -> Organisation: ...

    def get_organisation(self, organisation_id: int) -> Organisation | None: ...

    def list_organisations(self) -> list[Organisation]: ...

    def create_token(
        self,
        *,
        token_hash: str,
        prefix: str,
        name: str,
        organisation_id: int | None,
        permissions: Sequence[str],
        internal: bool,
    ) -> Token: ...

    def find_token(self, token_hash: str) -> Token | None: ...

    def get_token(self, token_id: int) -> Token | None: ...

    def list_tokens(self, organisation_id: int | None = None) -> list[Token]: ...

    def revoke_token(self, token_id: int) -> Token:
        """Mark a token revoked (idempotent); raises NotFound."""

    def count_tokens(self) -> int: ...

    # -- settings kept in the database ----------------------------------------
    def get_meta(self, key: str) -> str | None: ...

    def set_meta_if_absent(self, key: str, value: str) -> str:
        """Store ``value`` unless the key exists; return the stored value."""
