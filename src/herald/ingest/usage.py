"""emnify and 1NCE usage records (the data streamers' second record kind), read exactly.

A usage record has a ``traffic_type`` (5 data, 6 SMS) and no ``event_type``. It counts for
its endpoint on the UTC day of its ``end_timestamp``. Volumes are read as the decimals
written (MB with up to 6 decimals, SMS in whole messages) into whole units: data in
millionths of a MB, so that sums are exact. SMS: ``tx`` is sent by the device (MO), ``rx``
received (MT). ``volume.total`` is kept as the provider wrote it (``rx + tx`` if absent).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import (
    MAX_EMAX,
    MIN_EMIN,
    Context,
    Decimal,
    DecimalException,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    Subnormal,
    Underflow,
)
from typing import Any

from herald.ingest.errors import RecordError
from herald.ingest.records import _integer, _record_id
from herald.retention import DAY_MS
from herald.store.usage_records import DATA, SMS, UsageRecord
from herald.timefmt import parse_timestamp, to_ms

UNITS_PER_MB = 1_000_000
MAX_UNITS = 10**14 - 1  # DECIMAL(14,6), the providers' column
MAX_ENDPOINT_ID = 2**63 - 1
_TYPES = {"data": DATA, "sms": SMS}
_TRAPS = [InvalidOperation, DivisionByZero, Overflow, Underflow, Subnormal, Inexact]
# Exact arithmetic or an exception: a value with more digits than units (or absurd
# exponents, 1e-999999999) is refused rather than rounded or clamped.
_EXACT = Context(prec=60, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=_TRAPS)


@dataclass(frozen=True, slots=True)
class Usage:
    """What Herald keeps of one usage record (volumes in units: see the module)."""

    record_id: str
    endpoint_id: int
    traffic_type: int
    start_ms: int | None
    end_ms: int
    rx: int
    tx: int
    total: int

    def stored(
        self, *, id: int, organisation_id: int, provider: str, received_ms: int, raw: bytes
    ) -> UsageRecord:
        """The record as the store keeps it: counted on the UTC day of its end."""
        return UsageRecord(
            id=id,
            organisation_id=organisation_id,
            provider=provider,
            record_id=self.record_id,
            endpoint_id=self.endpoint_id,
            traffic_type=self.traffic_type,
            start_ms=self.start_ms,
            end_ms=self.end_ms,
            day=self.end_ms // DAY_MS,
            rx=self.rx,
            tx=self.tx,
            total=self.total,
            received_ms=received_ms,
            record=raw,
        )


def is_usage_record(item: object) -> bool:
    """A usage record, not an event record: it has a traffic type and no event type."""
    return isinstance(item, dict) and "traffic_type" in item and "event_type" not in item


def parse_usage(item: object) -> Usage:
    """One usage record, or ``RecordError`` naming the field and why."""
    if not isinstance(item, dict):
        raise RecordError("body", "each record must be a JSON object")
    if item.get("id") is None:
        raise RecordError("id", "required: the provider's record id")
    record_id = _record_id(item["id"])
    if len(record_id) > 128:
        raise RecordError("id", "at most 128 characters")
    traffic_type = _traffic_type(item.get("traffic_type"))
    endpoint = item.get("endpoint")
    if not isinstance(endpoint, Mapping) or endpoint.get("id") is None:
        raise RecordError("endpoint.id", "required: the endpoint the usage is of")
    endpoint_id = _integer(endpoint["id"], "endpoint.id")
    if not 0 <= endpoint_id <= MAX_ENDPOINT_ID:
        raise RecordError("endpoint.id", f"must be from 0 to {MAX_ENDPOINT_ID}")
    end_ms = _time(item.get("end_timestamp"), "end_timestamp")
    start_raw = item.get("start_timestamp")
    start_ms = None if start_raw is None else _time(start_raw, "start_timestamp")
    if start_ms is not None and start_ms > end_ms:
        raise RecordError("start_timestamp", "must not be after end_timestamp")
    volume = item.get("volume")
    if not isinstance(volume, Mapping):
        raise RecordError("volume", "required: an object with rx, tx and total")
    scale = UNITS_PER_MB if traffic_type == DATA else 1
    rx = units(volume.get("rx"), "volume.rx", scale)
    tx = units(volume.get("tx"), "volume.tx", scale)
    given = volume.get("total")
    total = rx + tx if given is None else units(given, "volume.total", scale)
    return Usage(record_id, endpoint_id, traffic_type, start_ms, end_ms, rx, tx, total)


def units(value: object, field: str, scale: int) -> int:
    """A volume as whole units (``scale`` per unit written): exact, or ``RecordError``."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RecordError(field, "required: a number")
    try:
        # a float's repr is the shortest text that reads back as it: the decimals written
        number = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except InvalidOperation:
        raise RecordError(field, "must be a number") from None
    if not number.is_finite() or number < 0:
        raise RecordError(field, "must be a number, 0 or more")
    if number > _EXACT.divide(Decimal(MAX_UNITS), Decimal(scale)):
        raise RecordError(field, f"too large (at most {MAX_UNITS / scale:.6f})")
    detail = "at most 6 decimals" if scale == UNITS_PER_MB else "a whole number of messages"
    try:
        scaled = _EXACT.multiply(number, Decimal(scale))
    except DecimalException:
        raise RecordError(field, f"must be {detail}") from None
    if scaled != scaled.to_integral_value():
        raise RecordError(field, f"must be {detail}")
    return int(scaled)


def _traffic_type(value: object) -> int:
    if isinstance(value, Mapping):
        if value.get("id") is not None:
            found = _integer(value["id"], "traffic_type.id")
        elif isinstance(value.get("description"), str):
            found = _TYPES.get(value["description"].strip().casefold(), -1)
        else:
            raise RecordError("traffic_type.id", "required")
    else:
        found = _integer(value, "traffic_type")
    if found not in (DATA, SMS):
        raise RecordError("traffic_type.id", f"must be {DATA} (Data) or {SMS} (SMS)")
    return found


def _time(value: Any, field: str) -> int:
    if not isinstance(value, str):
        raise RecordError(field, "required: an ISO 8601 time")
    try:
        return to_ms(parse_timestamp(value))
    except (ValueError, OverflowError):
        raise RecordError(field, "must be an ISO 8601 time, e.g. 2026-11-01T12:00:00Z") from None
