"""Provider records the tests send to the ingest endpoints."""

from __future__ import annotations

from typing import Any

from tests.support.dates import D6


def emnify_record(record_id: str, **fields: Any) -> dict[str, Any]:
    """A record as emnify's data streamer sends it: a Create PDP Context unless ``fields``
    say otherwise."""
    return {
        "id": record_id,
        "timestamp": f"{D6} 10:42:58+0000",
        "event_type": {"id": "3", "description": "Create PDP Context"},
        "event_severity": {"id": "0", "description": "INFO"},
        "event_source": {"name": "Policy Control"},
        "alert": 0,
        "description": "PDP Context accepted",
        **fields,
    }
