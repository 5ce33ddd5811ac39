"""The device-state projection under SIGKILL: the cursor and the rows it wrote move together,
so after a restart the states are exactly what folding the whole log gives."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from herald.devices import state as ds
from herald.devices.projector import parse
from herald.store import Store, open_store
from herald.timefmt import format_ms, now_ms
from tests.reliability.conftest import make_tenant
from tests.reliability.figures import Figures
from tests.support.server import start_server
from tests.support.waiting import wait_until

TYPES = (1, 2, 3, 3, 5, 15, 16, 19, 56, 9, 8, 11, 42, 10001)
NETWORKS = (
    {"id": 3, "name": "Vodafone", "country": {"id": 74, "name": "Germany"}},
    {"id": 9, "name": "Orange", "country": {"id": 67, "name": "France"}},
)


def _batches(organisation_id: int, seed: int, count: int, size: int) -> list[list[dict[str, Any]]]:
    """Events of 200 endpoints in random order of time (a backfill mixed with live traffic)."""
    rng = random.Random(seed)
    start = now_ms() - 86_400_000
    batches = []
    for _ in range(count):
        items = []
        for _ in range(size):
            network = rng.choice(NETWORKS)
            items.append(
                {
                    "event_type": {"id": rng.choice(TYPES)},
                    "organisation": {"id": organisation_id},
                    "timestamp": format_ms(start + rng.randrange(86_000_000)),
                    "endpoint": {"id": rng.randrange(200)},
                    "detail": {**network, "pdp_context": {"apn": rng.choice(("em", "iot"))}},
                }
            )
        batches.append(items)
    return batches


def _folded(store: Store) -> dict[tuple[int, str], str]:
    """Every state as folding the whole log from its start gives it (no store state read)."""
    states: dict[tuple[int, str], ds.DeviceState] = {}
    cursor = 0
    while entries := store.log.read(cursor, 5000):
        for key, event in parse(entries):
            states[key] = ds.apply(states.get(key, ds.DeviceState()), event)
        cursor = entries[-1].seq
    return {key: ds.dumps(folded).decode() for key, folded in states.items()}


def test_sigkill_during_projection_then_restart_gives_the_folded_state(
    tmp_path: Path, figures: Figures
) -> None:
    # the projector looks at the log only at start while the events go in
    server = start_server(tmp_path / "herald", env={"HERALD_DEVICE_STATE_POLL_SECONDS": "600"})
    store = open_store(server.database_url, sqlite_synchronous="NORMAL")
    try:
        tenant = make_tenant(server, "Crash Co", "event:create", "event:read")
        with server.client(server.admin_token) as client:
            for items in _batches(tenant.organisation_id, 18, 30, 1000):
                assert client.post("/event", json=items).status_code == 201
        last = store.log.last_seq()
        server.env["HERALD_DEVICE_STATE_POLL_SECONDS"] = "0.2"
        cut_short = []
        for delay in (0.1, 0.3, 0.6, 1.0):  # until a kill lands in the middle of the catch-up
            server.kill()
            server.start()  # the projector starts folding the 30,000 events
            time.sleep(delay)
            server.kill()
            cursor = store.devices.cursor()
            if cursor == last:
                break
            cut_short.append(cursor)
            figures.add("faults.device_state_kills")
        assert cut_short, "no kill landed during the catch-up"
        server.start()
        wait_until(
            lambda: store.devices.cursor() == last, 60, lambda: f"at {store.devices.cursor()}"
        )
        expected = _folded(store)
        stored = store.devices.states(sorted(expected))
        assert {key: row.state for key, row in stored.items()} == expected
        assert len(expected) == 200
    finally:
        store.close()
        server.stop()
