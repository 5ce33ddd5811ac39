"""The test servers' lifecycle: none outlives a failed start, a stop, or the session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support import server as servers
from tests.support.server import HeraldServer, end, free_port, start_server, stop_every_server
from tests.support.waiting import wait_until

STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"])
print(child.pid, flush=True)
time.sleep(120)
"""
"""A process (and a child of its own) that ignores SIGTERM, as a stuck server might."""


def gone(pid: int) -> bool:
    """No such process, or only its zombie left for its parent to reap."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (FileNotFoundError, IndexError):
        return True


def test_a_server_that_does_not_come_up_in_time_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(servers, "STARTUP_SECONDS", 0.0)
    herald = HeraldServer(
        workdir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'herald.db'}",
        port=free_port(),
        env={**os.environ, "HERALD_SQLITE_SYNCHRONOUS": "NORMAL"},
    )
    with pytest.raises(RuntimeError, match="did not answer /health within 0 s"):
        herald.start()
    assert herald.process is not None and herald.process.returncode is not None
    assert herald.process not in servers._RUNNING


def test_a_start_that_fails_any_other_way_leaves_no_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_wait(*args: object, **kwargs: object) -> None:
        raise OSError("the wait for /health broke")

    monkeypatch.setattr(httpx, "get", broken_wait)
    herald = HeraldServer(
        workdir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'herald.db'}",
        port=free_port(),
        env={**os.environ, "HERALD_SQLITE_SYNCHRONOUS": "NORMAL"},
    )
    with pytest.raises(OSError, match="the wait for /health broke"):
        herald.start()
    assert herald.process is not None and herald.process.returncode is not None
    assert herald.process not in servers._RUNNING


def test_stopping_kills_the_whole_group_after_the_grace() -> None:
    stubborn = subprocess.Popen(
        [sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, start_new_session=True
    )
    assert stubborn.stdout is not None
    child = int(stubborn.stdout.readline())
    end(stubborn, grace=0.5)
    stubborn.stdout.close()
    assert stubborn.returncode == -9  # SIGTERM was ignored: SIGKILL after the grace
    wait_until(lambda: gone(child), 30, lambda: f"child {child} still running")


def test_servers_left_running_are_stopped_when_the_session_ends(tmp_path: Path) -> None:
    left = start_server(tmp_path / "herald")  # a test that forgot to stop its server
    assert left.process is not None and left.process in servers._RUNNING
    stop_every_server()  # pytest_sessionfinish calls it, and atexit
    assert left.process.returncode is not None
    assert left.process not in servers._RUNNING
