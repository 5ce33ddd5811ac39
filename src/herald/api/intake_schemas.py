"""What the provider ingest and its quarantine answer, as models for the OpenAPI document.

The routes serialise plain data themselves (orjson); these models only say what it is.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ReasonOut(BaseModel):
    field: str
    reason: str


class RecordOutcome(BaseModel):
    """What happened to one record of a batch."""

    index: int
    status: str = Field(
        description="stored, duplicate, quarantined, or refused: unusable and not kept, its "
        "organisation's quarantine being full (the last reason says so)"
    )
    id: int | None = Field(
        default=None,
        description="The event's id (stored, duplicate); a usage record's own id with kind.",
    )
    rejected_id: int | None = Field(default=None, description="Its quarantine id.")
    kind: str | None = Field(default=None, description="usage: a usage record (no event).")
    errors: list[ReasonOut] | None = None


class IngestAnswer(BaseModel):
    """A provider batch's acknowledgement: counts, event ids in order, and each record."""

    received: int
    stored: int
    duplicates: int
    quarantined: int
    refused: int = Field(description="Unusable records not kept: the quarantine was full.")
    ids: list[int] = Field(
        description="The events' ids of the stored and duplicate event records (not usage)."
    )
    records: list[RecordOutcome]


class RejectedRecord(BaseModel):
    """A quarantined provider record: why, when, and the record as the provider sent it."""

    id: int
    organisation: dict[str, int]
    provider: str
    received: str
    attempted: str
    attempts: int
    errors: list[ReasonOut]
    size: int = Field(description="The record's size as sent, in bytes.")
    sha256: str = Field(description="The sha256 of the record as sent (hex).")
    truncated: bool = Field(
        description="Only the record's first bytes were kept (it was larger than "
        "HERALD_QUARANTINE_RECORD_BYTES): it cannot be retried."
    )
    record: Any = Field(description="The record, as sent; null when truncated.")
    record_prefix: str | None = Field(
        default=None, description="A truncated record's first bytes, as text."
    )


class RetryOutcome(BaseModel):
    """What a retry did with one quarantined record."""

    rejected_id: int
    status: str = Field(description="stored, duplicate or quarantined")
    id: int | None = Field(default=None, description="The event's id once stored.")
    kind: str | None = Field(default=None, description="usage: a usage record (no event).")
    errors: list[ReasonOut] | None = None


class RetryAnswer(BaseModel):
    """A bulk retry: how many were tried and what became of them."""

    retried: int
    stored: int
    duplicates: int
    quarantined: int
    remaining: int
    unretryable: int = Field(
        description="Of the remaining records, those kept truncated: never retried."
    )
    records: list[RetryOutcome]
