"""``herald events tail``: it says it waits, and misses no event posted while it starts."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from collections.abc import Iterator
from typing import IO

import pytest

from tests.support.herald import HERALD
from tests.support.inproc import InProcessHerald, start_in_process
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def herald(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessHerald]:
    server = start_in_process(tmp_path_factory.mktemp("cli-events") / "herald")
    try:
        yield server
    finally:
        server.stop()


def _lines(stream: IO[str], into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


def _post(server: InProcessHerald, token: str, description: str) -> None:
    with server.client(token) as client:
        answer = client.post(
            "/event", json=[{"event_type": {"id": 10007}, "description": description}]
        )
        assert answer.status_code in (200, 201, 202), answer.text


def test_tail_prints_the_newest_events_then_says_it_waits(herald: InProcessHerald) -> None:
    org = herald.create_org("Tailers")
    token = herald.create_token(org, "event:read", "event:create")
    for n in range(3):
        _post(herald, token, f"before {n}")
    args = ["events", "tail", "--json", "--last", "2", "--url", herald.url, "--token", token]
    tail = subprocess.Popen(
        [*HERALD, *args],
        cwd=herald.workdir,
        env=herald.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out: queue.Queue[str] = queue.Queue()
    err: queue.Queue[str] = queue.Queue()
    readers = [
        threading.Thread(target=_lines, args=(tail.stdout, out), daemon=True),
        threading.Thread(target=_lines, args=(tail.stderr, err), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        said = err.get(timeout=60)
        assert said.startswith("waiting for new events"), said
        _post(herald, token, "after")
        printed: list[str] = []

        def has_after() -> bool:
            while not out.empty():
                printed.append(json.loads(out.get())["description"])
            return "after" in printed

        wait_until(has_after, timeout=30)
        assert printed == ["before 1", "before 2", "after"]  # the backlog oldest first
    finally:
        tail.terminate()
        tail.wait(timeout=10)
        assert tail.stdout is not None and tail.stderr is not None
        tail.stdout.close()
        tail.stderr.close()


def test_a_malformed_token_is_answered_with_what_is_expected(herald: InProcessHerald) -> None:
    refused = herald.cli("events", "list", "--url", herald.url, "--token", "abc", check=False)
    assert refused.returncode == 1
    assert "401 invalid token: expected an application token (hrd_...)" in refused.stderr
    assert "segments" not in refused.stderr
