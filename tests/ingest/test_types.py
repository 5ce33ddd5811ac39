"""A provider's own type on Herald's catalogue: known ones kept, unknown ones generic."""

from __future__ import annotations

from typing import Any

import pytest

from herald.catalog import UNKNOWN_TYPES, load_catalog
from herald.ingest import RecordError
from herald.ingest.types import MAX_MONIKER, resolve_provider_type


def _resolve(provider: str, event: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return resolve_provider_type(provider, event, load_catalog()), event


@pytest.mark.parametrize("provider", ["emnify", "1nce"])
def test_type_ids(provider: str) -> None:
    assert _resolve(provider, {"event_type": {"id": 5}}) == ("5", {"event_type": {"id": 5}})
    for unknown in (61, 999, 1010, 2001, 10001):
        kept, event = _resolve(provider, {"event_type": {"id": unknown}})
        assert kept == str(unknown)
        assert event["event_type"] == {"id": UNKNOWN_TYPES[provider]}
    for wrong in (-1, 2**31):
        with pytest.raises(RecordError) as refused:
            _resolve(provider, {"event_type": {"id": wrong}})
        assert refused.value.field == "event_type.id"


def test_monikers() -> None:
    known = {"moniker": "endpointdatasessioncreatefailed_v1"}
    assert _resolve("stacuity", dict(known)) == ("endpointdatasessioncreatefailed_v1", known)
    kept, event = _resolve("stacuity", {"moniker": "bundleactivated_v1"})
    assert kept == "bundleactivated_v1"
    assert event == {"event_type": {"id": UNKNOWN_TYPES["stacuity"]}}
    with pytest.raises(RecordError) as refused:
        _resolve("stacuity", {"moniker": "x" * (MAX_MONIKER + 1)})
    assert refused.value.field == "eventType"
