"""The example records of the shared reference documents, parsed for the adapter tests."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHARED_REFERENCE
from tests.support.dates import D3

_JSON_BLOCK = re.compile(r"```json\n(.*?)```", re.S)
_ONECE_HEADING = re.compile(r"^(\d\d_[A-Za-z_]+)$", re.M)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _read(name: str) -> str:
    path: Path = SHARED_REFERENCE / name
    if not path.exists():
        pytest.skip(f"shared reference {name} is not beside the repository ({path})")
    return path.read_text()


def emnify_examples(*, as_published: bool = False) -> list[dict[str, Any]]:
    """Every ```json example of emnify-event-types.md (one holds a raw newline in a string),
    dated a few days ago (``recent``) unless ``as_published`` (2017-2022: refused as older
    than any retention window)."""
    blocks = _JSON_BLOCK.findall(_read("emnify-event-types.md"))
    records = [json.loads(block, strict=False) for block in blocks]
    return records if as_published else [recent(record) for record in records]


def onece_examples(*, as_published: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """(heading, record) for each example of 1nce-event-records.txt, e.g. 01_Update_Location,
    dated as ``emnify_examples`` are."""
    text = _read("1nce-event-records.txt")
    decoder = json.JSONDecoder(strict=False)
    examples = []
    for match in _ONECE_HEADING.finditer(text):
        start = text.index("{", match.end())
        record, _ = decoder.raw_decode(text, start)
        examples.append((match.group(1), record if as_published else recent(record)))
    return examples


_STACUITY_ROW = re.compile(
    r"^\| ([^|]+?) \| ([a-z0-9_]+) \| (Endpoint|Routing Target|Customer Account) \|$", re.M
)
_SCOPE_FIELD = {
    "Endpoint": "endpointId",
    "Routing Target": "routingTargetId",
    "Customer Account": "accountId",
}


def stacuity_examples() -> list[dict[str, Any]]:
    """One event-handler envelope per row of stacuity-event-types.txt (the document lists
    the monikers and scopes, no records), each of a scope's id as Stacuity sends it."""
    envelopes = []
    for index, (name, moniker, scope) in enumerate(
        _STACUITY_ROW.findall(_read("stacuity-event-types.txt"))
    ):
        envelopes.append(
            {
                "eventId": f"stacuity-{index}",
                "eventTime": "2026-11-01T10:00:00Z",
                "eventType": moniker,
                _SCOPE_FIELD[scope]: 4711 if scope == "Endpoint" else f"{scope[0].lower()}-{index}",
                "detail": {"name": name},
            }
        )
    return envelopes


def recently(records: list[dict[str, Any]], field: str = "timestamp") -> list[dict[str, Any]]:
    """The records with their times moved to the last hours (kept in order, a minute apart):
    records older than the retention window are refused, and the documents' are years old."""
    start = time.time() - 3600 - 60 * len(records)
    return [
        {**record, field: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + 60 * i))}
        for i, record in enumerate(records)
    ]


def recent(record: dict[str, Any]) -> dict[str, Any]:
    """The record with the date of its ``timestamp`` moved to three days ago: its time of
    day, zone and spelling kept, so the adapters still parse what the documents show."""
    timestamp = record.get("timestamp")
    if not isinstance(timestamp, str):
        return record
    return {**record, "timestamp": _DATE.sub(D3, timestamp, count=1)}
