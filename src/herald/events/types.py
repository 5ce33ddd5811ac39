"""What a read of the event log asks for and gets: queries, pages, log entries, stats."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from herald.query.filter import EventFilter


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
    time_limit: float | None = None  # seconds; past it QueryTimeout (None: the CLI's own)


@dataclass(frozen=True, slots=True)
class EventPage:
    """Serialised records (JSON bytes, in order), the total if counted, the next cursor."""

    items: list[bytes]
    total: int | None
    next_cursor: str | None


class LogEntry(NamedTuple):
    """One event as a log reader (delivery, live stream) sees it (a tuple: readers build
    hundreds per read)."""

    seq: int
    organisation_id: int
    type_id: int
    body: bytes
    event_id: int
    timestamp_ms: int | None = None  # the record's ``timestamp`` (the ``ts`` column)


LOG_SCAN_ROWS = 20_000
"""How many rows of the log one organisation's read looks at, at most: a small tenant's read
far back (a replay, a stream resumed, a handler retrying) must not walk the whole log in one
call while the others wait for the connection and lose their cached pages."""


class LogScan(NamedTuple):
    """What a bounded read of some organisations' log found (``store.log.scan``)."""

    entries: list[LogEntry]
    position: int  # everything up to here was looked at: the next read starts after it
    complete: bool  # the read reached the end of the log (or the end asked for)


def log_scan(
    entries: list[LogEntry],
    after_seq: int,
    limit: int,
    window: int | None,
    upto: int | None,
    end: int = 0,
) -> LogScan:
    """The result of a read of at most ``limit`` entries after ``after_seq`` and at most
    ``window`` (None: the log had fewer rows than a scan's worth), ``upto`` the end asked for;
    ``end``, the end of the log the read saw, is passed too when it reached it (a filtered
    read looked at the rows it did not take)."""
    if upto is not None and (window is None or window > upto):
        window = upto
    if len(entries) >= limit:
        return LogScan(entries, entries[-1].seq, False)
    if window is not None:
        return LogScan(entries, window, window == upto)
    return LogScan(entries, max(entries[-1].seq if entries else after_seq, end), True)


@dataclass(frozen=True, slots=True)
class StatsQuery:
    """Counts (and data volume) of the filtered events, by time bucket and/or group."""

    filter: EventFilter
    bucket_ms: int | None = None  # None: one bucket over the whole range
    group: str | None = None  # a STATS_GROUPS key; None: no grouping
    order: str = "count"  # "count" or "volume": which measure ranks the groups
    limit: int = 10_000
    time_limit: float | None = None  # seconds for each statement; past it QueryTimeout


@dataclass(frozen=True, slots=True)
class StatsRow:
    """One cell of an aggregate: bucket start, group key and label, event count, MB."""

    bucket_ms: int | None
    key: int | str | None
    label: str | None
    count: int
    volume_mb: float
