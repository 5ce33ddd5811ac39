"""The records of the ingest quarantine, as the Store takes and returns them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class NewRejection:
    """A record to quarantine: ``errors`` are ``{"field", "reason"}`` objects."""

    organisation_id: int
    provider: str
    digest: str
    received_ms: int
    errors: list[dict[str, Any]]
    record: bytes


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
