"""Retention: events older than the configured period are purged in the background."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.support.server import start_server


def test_old_events_are_purged_recent_ones_kept(tmp_path: Path) -> None:
    server = start_server(
        tmp_path / "herald",
        env={"HERALD_RETENTION_DAYS": "1", "HERALD_PURGE_INTERVAL_SECONDS": "0.2"},
    )
    try:
        now = datetime.now(UTC)
        with server.client(server.admin_token) as client:
            old, recent = client.post(
                "/event",
                json=[
                    {
                        "event_type": {"id": 1},
                        "organisation": {"id": 1},
                        "timestamp": (now - timedelta(days=2)).isoformat(),
                    },
                    {
                        "event_type": {"id": 1},
                        "organisation": {"id": 1},
                        "timestamp": (now - timedelta(hours=2)).isoformat(),
                    },
                ],
            ).json()
            deadline = time.monotonic() + 20
            while client.get(f"/event/{old['id']}").status_code == 200:
                assert time.monotonic() < deadline, "the old event was never purged"
                time.sleep(0.1)
            assert client.get(f"/event/{recent['id']}").status_code == 200
    finally:
        server.stop()
