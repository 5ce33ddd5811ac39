"""Two ``herald serve`` and two ``herald worker`` processes sharing one PostgreSQL database.

Four writers post concurrently through both servers; three handlers (both event types,
and one per type) each receive every matching event, in log order. The worker serving them
is SIGKILLed while a batch is in flight: nothing is lost, and its handlers move to the
other worker once the lease expires.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.fernet import Fernet

from tests.delivery.receiver import DELIVERY_ENV, Received, Receiver, receiving
from tests.support import postgres
from tests.support.herald import HERALD
from tests.support.server import HeraldServer, free_port, start_server

pytestmark = pytest.mark.postgres

WRITERS = 4
BATCHES = 8
BATCH = 10
TYPES = (10001, 10002)
# Processes sharing a database share the key that seals handler secrets (README).
ENV = {
    **DELIVERY_ENV,
    "HERALD_DELIVERY_ENABLED": "false",
    "HERALD_SECRET_KEY": Fernet.generate_key().decode(),
}


@pytest.fixture
def pg_url(postgres_template: str) -> Iterator[str]:
    with postgres.throwaway_database(postgres_template) as url:
        yield url


@pytest.fixture
def servers(pg_url: str, tmp_path: Path) -> Iterator[list[HeraldServer]]:
    started: list[HeraldServer] = []
    try:
        for name in ("api-1", "api-2"):
            started.append(start_server(tmp_path / name, env=ENV, database_url=pg_url))
        yield started
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def workers(pg_url: str, tmp_path: Path, servers: list[HeraldServer]) -> Iterator[list[Any]]:
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for name in ("worker-1", "worker-2"):
            (tmp_path / name).mkdir()
            with (tmp_path / name / "worker.log").open("wb") as log:
                processes.append(
                    subprocess.Popen(
                        [*HERALD, "worker", "--database", pg_url, "--port", str(free_port())],
                        cwd=tmp_path / name,
                        env=servers[0].env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        yield processes
    finally:
        for process in processes:
            process.kill()
            process.wait(10)


def owners(pg_url: str) -> dict[int, str | None]:
    """Which worker holds each handler's lease."""
    with psycopg.connect(pg_url) as conn:
        return dict(conn.execute("SELECT id, owner FROM handlers").fetchall())


def log_order(pg_url: str) -> list[tuple[int, int]]:
    """(id, type) of every event the writers wrote (not the platform's own), in log order."""
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT id, type_id FROM events WHERE type_id = ANY(%s) ORDER BY seq", [list(TYPES)]
        ).fetchall()
    return [(row[0], row[1]) for row in rows]


def write(server: HeraldServer, token: str, writer: int, out: list[list[int]]) -> None:
    with server.client(token) as client:
        for batch in range(BATCHES):
            events = [
                {"event_type": {"id": TYPES[i % 2]}, "description": f"w{writer} b{batch} e{i}"}
                for i in range(BATCH)
            ]
            response = client.post("/event", json=events)
            assert response.status_code == 201, response.text
            out.append([event["id"] for event in response.json()])


def first_seen(receiver: Receiver) -> list[int]:
    return list(dict.fromkeys(receiver.delivered_ids()))


def test_two_servers_two_workers_deliver_everything_in_order_through_a_sigkill(
    pg_url: str, servers: list[HeraldServer], workers: list[subprocess.Popen[bytes]]
) -> None:
    api = servers[0]
    organisation = api.create_org("Acme IoT")
    token = api.create_token(
        organisation, "handler:manage", "handler:read", "event:create", "event:read"
    )
    in_flight, release = threading.Event(), threading.Event()

    def hold_the_third(request: Received) -> tuple[int, dict[str, str]]:
        if not in_flight.is_set() and len(everything.requests) == 2:
            in_flight.set()  # the worker now waits on this batch: kill it
            release.wait(30)
        return 200, {}

    with (
        receiving(hold_the_third) as everything,
        receiving() as first_type,
        receiving() as second_type,
    ):
        handler_ids: list[int] = []
        with api.client(token) as client:
            hooks: list[tuple[Receiver, list[int]]] = [
                (everything, list(TYPES)),
                (first_type, [TYPES[0]]),
                (second_type, [TYPES[1]]),
            ]
            for receiver, types in hooks:
                response = client.post(
                    "/event_handler",
                    json={
                        "name": f"hook {types}",
                        "url": receiver.url,
                        "batch": {"max_events": BATCH},
                        "filter": {"event_types": types} if types else {},
                    },
                )
                assert response.status_code == 201, response.text
                handler_ids.append(response.json()["id"])

        written: list[list[int]] = []
        writers = [
            threading.Thread(target=write, args=(servers[n % 2], token, n, written))
            for n in range(WRITERS)
        ]
        for thread in writers:
            thread.start()

        assert in_flight.wait(60), "no delivery started"
        held_by = owners(pg_url)[handler_ids[0]]
        victim = next(w for w in workers if f":{w.pid}:" in str(held_by))
        victim.kill()  # SIGKILL, mid-batch: the receiver has not answered yet
        victim.wait(10)
        release.set()

        for thread in writers:
            thread.join(120)
        assert len(written) == WRITERS * BATCHES
        order = log_order(pg_url)
        assert len(order) == WRITERS * BATCHES * BATCH
        expected = {
            "all": [event_id for event_id, _ in order],
            "10001": [event_id for event_id, type_id in order if type_id == 10001],
            "10002": [event_id for event_id, type_id in order if type_id == 10002],
        }
        receivers = {"all": everything, "10001": first_type, "10002": second_type}
        for name, receiver in receivers.items():
            want = expected[name]
            receiver.wait_for(lambda: len(first_seen(receiver)) >= len(want), 90)  # noqa: B023
            # every matching event, in log order (repeats only of what was in flight)
            assert first_seen(receiver) == want, name
            assert len(receiver.delivered_ids()) - len(want) <= 3 * BATCH, name
        # each writer's own batches arrive in the order it wrote them
        position = {event_id: n for n, event_id in enumerate(expected["all"])}
        for batch in written:
            assert [position[i] for i in batch] == sorted(position[i] for i in batch)
        survivor = next(w for w in workers if w is not victim)
        assert survivor.poll() is None
        assert all(f":{survivor.pid}:" in str(owner) for owner in owners(pg_url).values())
