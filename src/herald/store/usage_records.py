"""The plain records of usage, as the store takes and returns them.

Volumes are whole numbers: data in millionths of a MB (the six decimals the providers
write), SMS in messages; so sums are exact on both backends.
"""

from __future__ import annotations

from dataclasses import dataclass

DATA, SMS = 5, 6
"""The providers' traffic type ids."""


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One provider usage record of an organisation's endpoint. ``day``: the UTC day (days
    since 1970) of its ``end_ms``, which it counts towards."""

    id: int
    organisation_id: int
    provider: str
    record_id: str
    endpoint_id: int
    traffic_type: int
    start_ms: int | None
    end_ms: int
    day: int
    rx: int
    tx: int
    total: int
    received_ms: int
    record: bytes


@dataclass(frozen=True, slots=True)
class DailyUsage:
    """One endpoint's usage records of one UTC day, summed; ``data_records`` counts the data
    records (with any, they alone say the day's data usage)."""

    day: int
    data_records: int = 0
    data_rx: int = 0
    data_tx: int = 0
    data_total: int = 0
    sms_mo: int = 0
    sms_mt: int = 0
    sms_total: int = 0


@dataclass(frozen=True, slots=True)
class Traffic:
    """A usage record's or a session's volume at a moment (``at_ms``)."""

    at_ms: int
    traffic_type: int
    rx: int
    tx: int
    total: int
