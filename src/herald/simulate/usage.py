"""Usage records of the simulated devices, as 1NCE's Data Streamer sends them.

A device on a usage-record stream (three devices in four) sends one data record when a
session closes, with the session's volume (as 1NCE does at a session's end), and one SMS
record per SMS it sends; the others leave their data usage to the sessions' Delete PDP
Context volumes. So the demo shows both sources, and the rule that counts each once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from herald.ids import IdGenerator
from herald.ingest.usage import parse_usage
from herald.simulate.fleet import Device
from herald.store import Store
from herald.store.usage_records import DATA, SMS
from herald.timefmt import format_ms, parse_timestamp, to_ms

PROVIDER = "1nce"


def sends_usage(device: Device) -> bool:
    """Whether the device's usage comes as usage records (else only as session volumes)."""
    return device.index % 4 != 0


def usage_record(
    device: Device, traffic_type: int, start_ms: int, end_ms: int, volume: dict[str, Any]
) -> dict[str, Any]:
    """One usage record with the fields 1NCE lists; its id: the end time, the kind, the
    device (unique per device and moment)."""
    kind = 0 if traffic_type == DATA else 1
    organisation = device.organisation
    return {
        "id": (end_ms << 21) | (kind << 20) | (device.index & 0xFFFFF),
        "traffic_type": {"id": traffic_type, "description": "SMS" if kind else "Data"},
        "start_timestamp": format_ms(start_ms),
        "end_timestamp": format_ms(end_ms),
        "organisation": {"id": organisation.id, "name": organisation.name},
        "endpoint": device.endpoint(),
        "sim": device.sim(),
        "imsi": device.imsi,
        "volume": volume,
    }


def sms_record(device: Device, at_ms: int) -> dict[str, Any]:
    """An SMS the device sent (mobile originated: tx)."""
    return usage_record(device, SMS, at_ms, at_ms, {"total": 1, "rx": 0, "tx": 1})


def restamp(record: dict[str, Any], end_ms: int) -> dict[str, Any]:
    """The record moved to end at ``end_ms``, its duration kept (the live stream's clock)."""
    start, end = (to_ms(parse_timestamp(record[k])) for k in ("start_timestamp", "end_timestamp"))
    return {
        **record,
        "start_timestamp": format_ms(end_ms - (end - start)),
        "end_timestamp": format_ms(end_ms),
    }


def save_usage(
    store: Store, ids: IdGenerator, records: Iterable[dict[str, Any]], received_ms: int
) -> int:
    """Keep simulated usage records as ingest would (read by the same reader); how many."""
    kept = [
        parse_usage(record).stored(
            id=ids.next_id(),
            organisation_id=record["organisation"]["id"],
            provider=PROVIDER,
            received_ms=received_ms,
            raw=orjson.dumps(record),
        )
        for record in records
    ]
    return sum(1 for saved in store.usage.save(kept) if saved is not None and saved[1])
