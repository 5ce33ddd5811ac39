"""The Store protocol."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from herald.events.types import (
    LOG_SCAN_ROWS,
    EventPage,
    EventQuery,
    LogEntry,
    LogScan,
    StatsQuery,
    StatsRow,
)
from herald.handlers.types import Delivery, Handler, HandlerProgress, HandlerSpec, Replay
from herald.organisations.types import Organisation, Token
from herald.query.filter import EventFilter
from herald.record import NewEvent
from herald.store.device_records import DeviceQuery, DeviceRow
from herald.store.rejections import NewRejection, QuarantineLimits, Rejected, RejectedPage
from herald.store.usage_records import DailyUsage, Traffic, UsageRecord

if TYPE_CHECKING:
    from herald.store.rules import RuleRepository


class Store(Protocol):
    """What every backend offers; the contract suite in tests/store runs against each."""

    rules: RuleRepository[Any]  # rules and their alert state (issue 35)

    def migrate(self) -> None:
        """Create or upgrade the schema."""

    def close(self) -> None: ...

    # -- events ---------------------------------------------------------------
    def append(self, events: Sequence[NewEvent], ids: Sequence[int]) -> list[bytes]:
        """Store events in one transaction; return each stored record in order.

        An event whose (organisation, provider, external_id) is already stored is not
        stored again: the record already stored is returned in its place. The write path
        refuses events outside their organisation's retention window; PostgreSQL, which
        never creates a partition for a write, raises InvalidQuery for one that slips
        through. Raises StoreUnavailable while ``write_refusal`` gives a reason.
        """

    def write_refusal(self) -> str | None:
        """Why appends are refused now (this process lost its node id lease), or None."""

    def lease_node_id(self, preferred: int | None = None) -> int:
        """Lease a node id (0-1023) no other live process sharing the store holds, and keep
        it with a heartbeat; ``preferred`` (HERALD_NODE_ID) or StoreUnavailable if taken.
        Once the lease is lost, appends are refused (``write_refusal``)."""

    def renew_node_lease(self) -> bool:
        """Renew the node id lease now (a heartbeat thread does so every few seconds), or
        take the id again if nobody holds it; False if another process does."""

    def query(self, query: EventQuery) -> EventPage: ...

    def get_event(self, event_id: int, organisation_ids: tuple[int, ...] | None) -> bytes | None:
        """One record, or None if absent or not in ``organisation_ids``."""

    def read_log(
        self, after_seq: int, limit: int, organisation_ids: tuple[int, ...] | None = None
    ) -> list[LogEntry]:
        """Events committed after ``after_seq``, in commit order."""

    def scan_log(
        self,
        after_seq: int,
        limit: int,
        organisation_ids: tuple[int, ...],
        upto_seq: int | None = None,
        scan_rows: int = LOG_SCAN_ROWS,
    ) -> LogScan:
        """``organisation_ids``' events after ``after_seq`` (and at most ``upto_seq``) in commit
        order, at most ``limit`` of them, looking at no more than ``scan_rows`` rows of the
        log: a tenant's read costs the same however little of the log is its own."""

    def last_seq(self) -> int: ...

    default_retention_days: float

    def maintain(self) -> None:
        """Prepare ahead of time what writes need (PostgreSQL: the partitions of the
        retention window and the days ahead); the maintenance loop runs it."""

    """The retention of organisations without one of their own (HERALD_RETENTION_DAYS)."""

    def purge(self, now_ms: int | None = None, chunk: int = 10_000) -> int:
        """Delete the events older than their organisation's retention as of ``now_ms``
        (default: now); return how many. PostgreSQL also creates the partitions ahead."""

    # -- organisations and tokens ---------------------------------------------
    def create_organisation(
        self, name: str, organisation_id: int | None = None, retention_days: int | None = None
    ) -> Organisation: ...

    def set_retention(self, organisation_id: int, retention_days: int | None) -> Organisation:
        """Change an organisation's retention (None: the default); raises NotFound."""

    def set_device_events(self, organisation_id: int, enabled: bool) -> Organisation:
        """Whether the organisation's endpoints' status changes are written as events;
        raises NotFound."""

    def set_event_budget(
        self,
        organisation_id: int,
        events_per_second: float | None,
        event_burst: int | None,
        bytes_per_day: int | None,
    ) -> Organisation:
        """Set an organisation's event budget (each None: the server's default); raises
        NotFound."""

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

    # -- event handlers -------------------------------------------------------
    def create_handler(
        self,
        organisation_id: int,
        spec: HandlerSpec,
        secret: str,
        max_handlers: int | None = None,
    ) -> Handler:
        """A new handler whose cursor is the end of the log: it gets events from now on.
        LimitReached if the organisation has ``max_handlers`` already."""

    def get_handler(
        self, handler_id: int, organisation_ids: tuple[int, ...] | None = None
    ) -> Handler | None: ...

    def list_handlers(self, organisation_ids: tuple[int, ...] | None = None) -> list[Handler]: ...

    def update_handler(
        self, handler_id: int, organisation_ids: tuple[int, ...] | None, spec: HandlerSpec
    ) -> Handler:
        """Replace the spec; enabling a disabled handler clears its failures, never its
        cursor (it resumes where it stopped). Raises NotFound."""

    def delete_handler(self, handler_id: int, organisation_ids: tuple[int, ...] | None) -> None:
        """Delete a handler with its attempt log and replays; raises NotFound."""

    def rotate_handler_secret(
        self,
        handler_id: int,
        organisation_ids: tuple[int, ...] | None,
        secret: str,
        previous_until_ms: int,
    ) -> Handler:
        """Install a new secret; the current one stays valid until ``previous_until_ms``."""

    def reseal_handler_secrets(self, reseal: Callable[[str], str | None]) -> int:
        """Rewrite each handler's secrets as ``reseal`` gives them (None: as they are);
        how many handlers changed. A handler changed meanwhile keeps its new secrets."""

    def claim_handlers(self, owner: str, now_ms: int, lease_ms: int) -> list[Handler]:
        """Lease every enabled handler that is free, expired or already ``owner``'s.

        Every enabled handler ``owner`` holds is in the answer, even one whose row its own
        bookkeeping has locked at that moment: the worker takes a handler missing from it
        as lost. A backend with several workers takes the free and expired ones with
        ``FOR UPDATE SKIP LOCKED``, so that workers never queue behind each other.
        """

    def claimable_handler_ids(self, owner: str, now_ms: int) -> list[int]:
        """Ids of the enabled handlers ``claim_handlers`` would lease now; a cheap read, so
        a worker can look often for handlers to take up."""

    def release_handlers(self, owner: str) -> None:
        """Give up ``owner``'s leases (on a clean shutdown)."""

    def record_delivery(
        self,
        owner: str,
        delivery: Delivery,
        progress: HandlerProgress | None,
        replay_cursor: tuple[int, int] | None = None,
        notice: tuple[NewEvent, int] | None = None,
    ) -> Handler | None:
        """In one transaction: log the attempt, write the handler's progress, move a
        replay's cursor ``(replay id, seq)`` and append a ``notice`` event ``(event, id)``
        (the "handler disabled" one); return the handler as written. None (and nothing
        written) if ``owner`` no longer holds the lease, or the handler of
        ``delivery.handler_id`` is gone or not ``delivery.organisation_id``'s (handler ids
        are never given twice). A test delivery (no progress) needs no lease.

        Delivery bookkeeping does not wait for the disk: a crash of the machine (not of the
        process) may undo the last attempts, whose events are then delivered again."""

    def advance_cursor(
        self, handler_id: int, owner: str, cursor_seq: int, organisation_id: int
    ) -> Handler | None:
        """Move the cursor past events that match nothing; the handler as written, None if
        the lease is lost (or the handler is gone or not ``organisation_id``'s)."""

    def advance_cursors(self, owner: str, handler_ids: Sequence[int], cursor_seq: int) -> None:
        """Move the cursors of ``owner``'s handlers ``handler_ids`` forward to ``cursor_seq``
        (never back), not waiting for the disk: idle handlers in one write."""

    def log_activity(self, after_seq: int, upto_seq: int, limit: int) -> dict[int, set[int]] | None:
        """Which organisations' events, of which types, were committed in
        (``after_seq``, ``upto_seq``]; None if more than ``limit`` events were."""

    def list_deliveries(
        self, handler_id: int, before_id: int | None = None, limit: int = 100
    ) -> list[Delivery]:
        """The attempt log, newest first, keyset-paged by ``before_id``."""

    def create_replay(self, handler_id: int, from_ms: int, until_ms: int) -> Replay:
        """Queue the handler's events of ``[from_ms, until_ms]`` committed by now."""

    def pending_replays(self, handler_id: int) -> list[Replay]: ...

    def advance_replay(
        self, replay_id: int, cursor_seq: int, handler_id: int, organisation_id: int
    ) -> None:
        """Move a replay's cursor; it is done once it reaches its end. Nothing is written
        unless the replay is ``handler_id``'s and the handler ``organisation_id``'s."""

    def count_log(
        self,
        organisation_id: int,
        after_seq: int,
        flt: EventFilter | None = None,
        limit: int | None = None,
    ) -> int:
        """How many of the organisation's events (those ``flt`` selects) were committed
        after ``after_seq``; counting stops at ``limit``."""

    def first_in_log(
        self, organisation_id: int, after_seq: int, flt: EventFilter | None = None
    ) -> bytes | None:
        """The body of the organisation's first event (that ``flt`` selects) committed after
        ``after_seq``."""

    # -- the ingest quarantine (store/quarantine.py) ---------------------------
    def quarantine(
        self, rejections: Sequence[NewRejection], limits: QuarantineLimits | None = None
    ) -> list[tuple[int, bool] | None]:
        """Keep each record once per (organisation, provider, digest); per record its row id
        and whether it is new, or None when it is new and its organisation's quarantine has
        no room for it within ``limits``."""

    def quarantine_usage(self, organisation_id: int) -> tuple[int, int]:
        """How many records the organisation's quarantine holds, and their bytes."""

    def list_rejected(
        self,
        organisation_ids: tuple[int, ...] | None,
        provider: str | None = None,
        page: int = 1,
        per_page: int = 100,
        *,
        before: int | None = None,
        max_bytes: int | None = None,
    ) -> RejectedPage:
        """A page of quarantined records, newest first (older than ``before``), within
        ``max_bytes`` of records (one at least), how many there are in all, and where the
        next page starts."""

    def count_rejected(
        self,
        organisation_ids: tuple[int, ...] | None,
        provider: str | None = None,
        truncated: bool | None = None,
    ) -> int: ...

    def oldest_rejected(
        self,
        organisation_ids: tuple[int, ...] | None,
        provider: str | None,
        limit: int,
        max_bytes: int | None = None,
    ) -> list[Rejected]:
        """Up to ``limit`` records kept whole, oldest first, within ``max_bytes`` (one at
        least): what a bulk retry works on."""

    def get_rejected(
        self, rejected_id: int, organisation_ids: tuple[int, ...] | None
    ) -> Rejected | None: ...

    def release_rejected(self, rejected_ids: Sequence[int]) -> int:
        """Delete records a retry stored or an operator discarded."""

    def refuse_again(
        self, refusals: Sequence[tuple[int, list[dict[str, Any]]]], at_ms: int
    ) -> None:
        """Records a retry still could not use (id, reasons): one attempt more each."""

    def purge_rejected(self, before_ms: int) -> int:
        """Delete quarantined records received before ``before_ms``."""

    # -- usage (store/usage.py) ------------------------------------------------
    def save_usage(self, records: Sequence[UsageRecord]) -> list[tuple[int, bool] | None]:
        """Keep each usage record once and add the new ones to their day's sums, in one
        transaction; per record its id (the kept one's, for a duplicate) and whether new,
        or None if not kept: it would take a sum of its day past ``MAX_DAILY`` (store.usage)."""

    def usage_days(
        self, organisation_id: int, endpoint_id: int, first_day: int, last_day: int
    ) -> list[DailyUsage]:
        """The endpoint's summed usage records of these days (those that have any)."""

    def usage_since(self, organisation_id: int, endpoint_id: int, since_ms: int) -> list[Traffic]:
        """The endpoint's usage records that ended at or after ``since_ms``."""

    def usage_sessions(
        self, organisation_id: int, endpoint_id: int, start_ms: int, end_ms: int
    ) -> list[tuple[int, bytes]]:
        """(time, stored record) of the endpoint's Delete PDP Context events in the range."""

    def usage_records(
        self, organisation_id: int, endpoint_id: int, start_ms: int, end_ms: int, limit: int
    ) -> list[bytes]:
        """The endpoint's usage records as the provider sent them (cost, currency, tariff and
        all) that ended in ``[start_ms, end_ms)``, newest first, at most ``limit``."""

    def usage_day_records(
        self, organisation_id: int, endpoint_id: int, first_day: int, last_day: int, limit: int
    ) -> list[tuple[int, int, bytes]]:
        """(day, traffic type, record as sent) of the endpoint's usage records of these days,
        the newest day first, at most ``limit``."""

    def usage_organisation(
        self, organisation_ids: tuple[int, ...] | None, endpoint_id: int
    ) -> int | None:
        """The lowest of these organisations (None: any) with usage or events of the endpoint."""

    def purge_usage(self, now_ms: int) -> int:
        """Delete the usage of the days past their organisation's retention window."""

    # -- the device-state projection (store/devices.py) ------------------------
    def device_cursor(self) -> int:
        """The log position the device states include."""

    def device_position(self) -> tuple[int, int]:
        """``device_cursor()`` with the position its last reset started from (the last
        rebuild's end of the log): together they change whenever another writer did."""

    def device_states(self, keys: Sequence[tuple[int, str]]) -> dict[tuple[int, str], DeviceRow]:
        """The stored states of these (organisation, endpoint key) pairs that have one."""

    def save_device_states(
        self,
        after_seq: int,
        cursor_seq: int,
        rows: Sequence[DeviceRow],
        changes: Sequence[tuple[NewEvent, int]] = (),
    ) -> bool:
        """Move the projection's cursor from ``after_seq`` to ``cursor_seq``, write ``rows``
        and append the status-change events ``changes`` (event, id), in one transaction;
        False (nothing written) if the cursor has moved."""

    def device_event_settings(self) -> tuple[int, dict[int, str]]:
        """The log position up to which no status change is emitted (the last rebuild's
        end of the log), and the organisations that asked for them (id -> name)."""

    def reset_device_states(self) -> None:
        """Forget every state; the projection starts again from the start of the log."""

    def get_device_state(
        self, organisation_ids: tuple[int, ...] | None, endpoint_key: str
    ) -> DeviceRow | None: ...

    def list_device_states(self, query: DeviceQuery) -> tuple[list[DeviceRow], int]:
        """A page of endpoint states and how many match in all."""

    def device_status_counts(self, organisation_ids: tuple[int, ...] | None) -> dict[int, int]:
        """How many endpoints are in each status."""

    # -- stats ----------------------------------------------------------------
    def stats(self, query: StatsQuery) -> list[StatsRow]:
        """Event counts and data volume per time bucket and group (``StatsQuery``)."""
