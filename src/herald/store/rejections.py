"""The records of the ingest quarantine, as the Store takes and returns them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple


@dataclass(frozen=True, slots=True)
class NewRejection:
    """A record to quarantine: ``errors`` are ``{"field", "reason"}`` objects.

    ``record`` is the record's bytes as sent, or only their first bytes when the record was
    larger than a quarantined record may be: ``original_bytes`` then says how large it was
    (``digest``, its sha256, is always the whole record's)."""

    organisation_id: int
    provider: str
    digest: str
    received_ms: int
    errors: list[dict[str, Any]]
    record: bytes
    original_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A quarantined record as stored."""

    id: int
    organisation_id: int
    provider: str
    received_ms: int
    attempted_ms: int
    attempts: int
    errors: list[dict[str, Any]]
    record: bytes
    digest: str = ""
    original_bytes: int | None = None  # set: ``record`` holds only the record's first bytes

    @property
    def truncated(self) -> bool:
        """Whether only the record's first bytes were kept (it cannot be ingested again)."""
        return self.original_bytes is not None

    @property
    def size(self) -> int:
        """The record's size as sent, in bytes."""
        return len(self.record) if self.original_bytes is None else self.original_bytes


@dataclass(frozen=True, slots=True)
class QuarantineLimits:
    """What one organisation's quarantine may hold: records, and bytes of records."""

    records: int
    bytes: int


class RejectedPage(NamedTuple):
    """A page of quarantined records, how many match in all, and where the next page
    starts (the id to pass as ``before``), None when this page is the last."""

    records: list[Rejected]
    total: int
    next_before: int | None
