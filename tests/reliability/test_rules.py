"""The rules evaluator under SIGKILL: the groups, the alert events and the position move
together, so after kills in the middle of a catch-up every alert is written once."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import orjson

from herald.rules.alerts import FIRED
from herald.store import Store, open_store
from herald.timefmt import format_ms, now_ms
from tests.reliability.conftest import make_tenant
from tests.reliability.figures import Figures
from tests.support.server import start_server
from tests.support.waiting import wait_until

BATCHES, PER_BATCH = 30, 20  # each batch's events name endpoints of its own
ENDPOINTS = BATCHES * PER_BATCH


def _batches(seed: int, size: int) -> list[list[dict[str, Any]]]:
    """Attach failures over the last half day, in random order of time; the endpoints of
    batch b first appear in it, so that the alerts are spread over the whole log."""
    rng = random.Random(seed)
    start = now_ms() - 43_200_000
    return [
        [
            {
                "event_type": {"id": 7},
                "timestamp": format_ms(start + rng.randrange(43_000_000)),
                "endpoint": {"id": batch * PER_BATCH + rng.randrange(PER_BATCH)},
            }
            for _ in range(size)
        ]
        for batch in range(BATCHES)
    ]


def _fired(store: Store, organisation_id: int) -> list[str]:
    """The group keys of the organisation's "Rule fired" events, as stored."""
    keys: list[str] = []
    after = 0
    while entries := store.log.read(after, 10_000, (organisation_id,)):
        after = entries[-1].seq
        keys += [
            orjson.loads(e.body)["detail"]["group"]["key"] for e in entries if e.type_id == FIRED
        ]
    return keys


def test_sigkill_during_evaluation_writes_each_alert_once(
    tmp_path: Path, figures: Figures, database_url: str
) -> None:
    """On each backend."""
    # the evaluator looks at the log only at start while the events go in
    env = {"HERALD_RULES_POLL_SECONDS": "600"}
    server = start_server(tmp_path / "herald", env=env, database_url=database_url)
    store = open_store(server.database_url, sqlite_synchronous="NORMAL")
    try:
        tenant = make_tenant(server, "Crash Co", "event:create", "event:read")
        with server.client(server.admin_token) as client:
            rule = {  # each endpoint fires once and stays firing: a day's window and hold-down
                "name": "attach failures",
                "q": "type:7",
                "condition": {"kind": "count", "count": 1, "window_seconds": 86_400},
                "hold_down_seconds": 86_400,
                "organisation_id": tenant.organisation_id,
            }
            assert client.post("/rule", json=rule).status_code == 201
            for items in _batches(35, 1000):
                items = [{**e, "organisation": {"id": tenant.organisation_id}} for e in items]
                assert client.post("/event", json=items).status_code == 201
        server.env["HERALD_RULES_POLL_SECONDS"] = "0.2"
        cut_short = []
        for delay in (0.1, 0.3, 0.6, 1.0, 1.5):  # until a kill lands in the middle of it
            server.kill()
            server.start()  # the evaluator starts on the 30,000 events
            time.sleep(delay)
            server.kill()
            found = len(_fired(store, tenant.organisation_id))
            if found == ENDPOINTS:
                break
            cut_short.append(found)
            figures.add("faults.rules_kills")
        assert cut_short, "no kill landed during the evaluation"
        server.start()
        wait_until(lambda: len(_fired(store, tenant.organisation_id)) >= ENDPOINTS, 60)
        time.sleep(1)  # a few more steps: nothing more may come
        fired = _fired(store, tenant.organisation_id)
        assert sorted(fired) == sorted(str(i) for i in range(ENDPOINTS))  # each once
        assert len(store.rules.alerts((tenant.organisation_id,))) == ENDPOINTS
    finally:
        store.close()
        server.stop()
