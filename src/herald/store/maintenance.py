"""The upkeep of a store (``store.maintenance``): its schema, the partitions and retention,
and the rewrites of rows stored by earlier releases. ``herald db`` and the maintenance loop
run these; each backend implements them in its own SQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from herald.store.migrator import SchemaStatus


class Maintenance(Protocol):
    """What ``herald db`` and the maintenance loop ask of a store."""

    default_retention_days: float
    """The retention of organisations without one of their own (HERALD_RETENTION_DAYS)."""

    def migrate(self) -> None:
        """Create or upgrade the schema."""

    def schema_status(self) -> SchemaStatus:
        """Which migrations the database has and which it still needs."""

    def maintain(self) -> None:
        """Prepare ahead of time what writes need (PostgreSQL: the partitions of the
        retention window and the days ahead) and, hourly, a compression dictionary trained
        on the store's newest records if it packs them better; the maintenance loop runs it."""

    def purge(self, now: int | None = None, chunk: int = 10_000) -> int:
        """Delete the events older than their organisation's retention as of ``now``
        (default: now); return how many. PostgreSQL also creates the partitions ahead."""

    def partitions(self) -> list[str]:
        """The names of the event partitions, oldest first (SQLite has none)."""

    def uncompacted_events(self) -> int:
        """How many rows were stored before records were compressed (or lean)."""

    def compact_records(
        self, progress: Callable[[int], Any] | None = None, chunk: int = ...
    ) -> int:
        """Compress the records of those rows; how many were rewritten."""

    def unbackfilled_events(self, limit: int | None = None) -> int:
        """How many events still lack the filter columns added after they were stored."""

    def backfill_fields(
        self, progress: Callable[[int], Any] | None = None, chunk: int = ...
    ) -> int:
        """Fill those columns from the events' records (resumable); how many were filled."""

    def sample_records(self, samples: int) -> list[bytes]:
        """The newest ``samples`` records, as served: what a dictionary is trained on."""

    def retrain_dictionary(self, samples: int = ...) -> int | None:
        """A dictionary trained on the newest records, kept if it packs them better than
        the one in use: its id, or None."""

    def train_dictionary(self, samples: int = ...) -> tuple[int, bytes]:
        """Train a compression dictionary on the newest records and add it: its id and bytes."""
