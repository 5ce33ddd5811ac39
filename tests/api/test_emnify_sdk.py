"""emnify's own Python SDK (``emnify-sdk``) reads Herald as it reads emnify: it authenticates
with an application token, pages a device's events by ``X-Total-Pages`` (records with
``user``, ``sim``... null, issue #34 point 2) and reads the device's connectivity, against the
app (served in process) on each backend.

The SDK needs pydantic 1, so it lives in an interpreter of its own: ``SDK_PYTHON``
(``.venv/emnify-sdk``, made by ``.ci/run``; by hand: ``python3 -m venv .venv/emnify-sdk &&
.venv/emnify-sdk/bin/pip install emnify-sdk==0.5.3``). Without it the test is skipped with
that reason, except in CI, where it fails.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from herald.timefmt import format_ms, now_ms
from tests.support.herald import Herald
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
SDK_PYTHON = Path(
    os.environ.get(
        "HERALD_TEST_EMNIFY_SDK_PYTHON", ROOT / ".venv" / "emnify-sdk" / "bin" / "python"
    )
)
# Run by the SDK's interpreter: the device's events and connectivity as the SDK models them.
SDK_SCRIPT = """
import json, sys
from emnify import EMnify
api = EMnify(app_token=sys.argv[1])
events = [e.dict() for e in api.devices.get_device_events_list(int(sys.argv[2]))]
status = api.devices.get_device_connectivity_status(int(sys.argv[2]))
print(json.dumps({"events": events, "status": status.dict()}))
"""
ENDPOINT = 5
COUNT = 150  # with the Update location, two pages of 100 (the default): the SDK pages


def _sdk_python() -> Path:
    if SDK_PYTHON.exists():
        return SDK_PYTHON
    reason = (
        f"the emnify SDK's interpreter {SDK_PYTHON} is missing: python3 -m venv "
        ".venv/emnify-sdk && .venv/emnify-sdk/bin/pip install emnify-sdk==0.5.3"
    )
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def test_the_emnify_sdk_reads_events_with_null_fields_and_connectivity(
    herald: Herald,
) -> None:
    python = _sdk_python()
    organisation = herald.create_org("Acme IoT")
    token = herald.create_token(organisation, "event:read", "event:create")
    start = now_ms() - 60_000
    located = {
        "event_type": {"id": 1},
        "timestamp": format_ms(start),
        "endpoint": {"id": ENDPOINT, "name": "tracker-5"},
        "detail": {"id": 3, "name": "Vodafone", "country": {"id": 74, "name": "Germany"}},
    }
    bare = [
        {"event_type": {"id": 10001}, "timestamp": format_ms(start + 1 + i), "endpoint": {"id": 5}}
        for i in range(COUNT)
    ]
    with herald.client(token) as client:
        posted = client.post("/event", json=[located, *bare])
        assert posted.status_code == 201, posted.text
        assert all(event["sim"] is None and event["user"] is None for event in posted.json())

        def projected() -> bool:
            return client.get(f"/endpoint/{ENDPOINT}/connectivity").status_code == 200

        wait_until(projected, 60)
        listed = client.get(f"/endpoint/{ENDPOINT}/event", params={"per_page": 1000}).json()

    result = subprocess.run(
        [str(python), "-c", SDK_SCRIPT, token, str(ENDPOINT)],
        env={**os.environ, "EMNIFY_SDK_API_ENDPOINT_URL": f"{herald.url}/api"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    read: dict[str, Any] = json.loads(result.stdout)
    events = read["events"]
    assert [event["id"] for event in events] == [event["id"] for event in listed]  # every page
    assert len(events) == COUNT + 1
    assert all(event["user"] is None for event in events)
    assert events[-1]["event_type"]["id"] == 1 and events[-1]["description"] == "Update location"
    assert read["status"]["status"]["description"] == "ATTACHED"
    assert read["status"]["location"]["operator"]["name"] == "Vodafone"
