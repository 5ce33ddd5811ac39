"""A real ``herald serve`` process on loopback, for integration tests."""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from tests.support.herald import HERALD, TEST_ENV, Herald

STARTUP_SECONDS = float(os.environ.get("HERALD_TEST_STARTUP_SECONDS", "120"))
"""How long a server may take to answer /health: generous, as a machine loaded by other work
starts Python processes slowly; a server that does not come up is killed and the test fails."""
STOP_GRACE_SECONDS = 10
"""SIGTERM's grace on ``stop()`` (a server drains deliveries in flight), then SIGKILL."""
_RUNNING: set[subprocess.Popen[bytes]] = set()
"""Every server process this test process started and has not seen exit."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class HeraldServer(Herald):
    """One ``herald serve`` process with its own database; restartable, killable."""

    port: int
    process: subprocess.Popen[bytes] | None = None
    extra_args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the process and wait for its /health; a start that fails in any way (it
        exits, does not answer in time, or the wait is interrupted) leaves no process."""
        with self.log_file.open("ab") as log:
            process = self.process = self._spawn(log)
        try:
            self._wait_until_up()
            if not self.admin_token and self.admin_token_file.exists():
                self.admin_token = self.admin_token_file.read_text().strip()
        except BaseException:
            end(process, grace=2)
            raise

    def _spawn(self, log: IO[bytes]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [
                *HERALD,
                "serve",
                "--port",
                str(self.port),
                "--database",
                self.database_url,
                "--no-demo",  # a test asks for the demo with extra_args=["--demo"]
                *self.extra_args,
            ],
            cwd=self.workdir,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as a whole
        )
        _RUNNING.add(process)
        return process

    def _wait_until_up(self) -> None:
        assert self.process is not None
        started = time.monotonic()
        while time.monotonic() < started + STARTUP_SECONDS:
            if self.process.poll() is not None:
                raise RuntimeError(f"herald serve exited: {self.log()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(
            f"herald serve did not answer /health within {STARTUP_SECONDS:.0f} s "
            f"(HERALD_TEST_STARTUP_SECONDS): {self.log()[-2000:]}"
        )

    def stop(self) -> None:
        """SIGTERM (a graceful stop), SIGKILL to its process group after the grace."""
        if self.process:
            end(self.process, grace=STOP_GRACE_SECONDS)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.process:
            end(self.process, grace=0)

    def restart(self) -> None:
        self.stop()
        self.start()


def end(process: subprocess.Popen[bytes], grace: float) -> None:
    """Stop a server's process group: SIGTERM, then SIGKILL after ``grace`` s (at once if 0)."""
    if process.poll() is None and grace:
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    if process.poll() is None:
        _signal_group(process, signal.SIGKILL)
        process.wait(30)
    _RUNNING.discard(process)


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)  # the leader is not reaped yet: its group id is its own
    except ProcessLookupError:
        pass


@atexit.register
def stop_every_server() -> None:
    """Stop the servers a test left running (also called when the pytest session ends)."""
    for process in list(_RUNNING):
        end(process, grace=3)


def start_server(
    workdir: Path, env: dict[str, str] | None = None, database_url: str | None = None
) -> HeraldServer:
    """Start ``herald serve`` on a free loopback port with a fresh database in ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **TEST_ENV, **(env or {})}
    server = HeraldServer(
        workdir=workdir,
        database_url=database_url or f"sqlite:///{workdir / 'herald.db'}",
        port=free_port(),
        env=full_env,
    )
    server.start()
    return server
