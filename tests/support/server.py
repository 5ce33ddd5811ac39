"""A real ``herald serve`` process on loopback, for integration tests."""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from herald.auth import issue_token
from herald.config import Settings
from herald.store import Store, open_store
from herald.store.sqlite import sqlite_path

HERALD = [sys.executable, "-m", "herald"]
STARTUP_SECONDS = float(os.environ.get("HERALD_TEST_STARTUP_SECONDS", "120"))
"""How long a server may take to answer /health: generous, as a machine loaded by other work
starts Python processes slowly; a server that does not come up is killed and the test fails."""
STOP_GRACE_SECONDS = 10
"""SIGTERM's grace on ``stop()`` (a server drains deliveries in flight), then SIGKILL."""
_RUNNING: set[subprocess.Popen[bytes]] = set()
"""Every server process this test process started and has not seen exit."""
DEFAULT_RETENTION_DAYS = Settings.model_fields["retention_days"].default


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class HeraldServer:
    """One server process with its own database; restartable, killable."""

    workdir: Path
    database_url: str
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    admin_token: str = ""
    extra_args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with (self.workdir / "server.log").open("ab") as log:
            self.process = self._spawn(log)
        self._wait_until_up()
        if not self.admin_token and self.admin_token_file.exists():
            self.admin_token = self.admin_token_file.read_text().strip()

    @property
    def admin_token_file(self) -> Path:
        """Where the first start writes the admin token: beside a SQLite file, else in cwd."""
        if self.database_url.startswith("sqlite:"):
            return Path(sqlite_path(self.database_url) + ".admin-token")
        return self.workdir / "herald.admin-token"

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
                _RUNNING.discard(self.process)
                raise RuntimeError(f"herald serve exited: {self.log()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        end(self.process, grace=2)  # a server that did not come up is never left behind
        raise RuntimeError(
            f"herald serve did not answer /health within {STARTUP_SECONDS:.0f} s "
            f"(HERALD_TEST_STARTUP_SECONDS): {self.log()[-2000:]}"
        )

    def log(self) -> str:
        path = self.workdir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

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

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, timeout=30)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``herald ARGS`` against this server's database."""
        result = subprocess.run(
            [*HERALD, *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"herald {' '.join(args)} failed: {result.stderr}{result.stdout}")
        return result

    def create_org(self, name: str, organisation_id: int | None = None) -> int:
        """A new organisation in this server's database, as ``herald org create`` makes it
        (through the store: a CLI process per fixture cost seconds; tests/cli tests the CLI)."""
        with self._store() as store:
            return store.create_organisation(name, organisation_id).id

    def create_token(self, organisation_id: int, *permissions: str) -> str:
        """A tenant token's secret, as ``herald token create`` issues it (through the store
        too, unless the server records security events: the CLI then records its own)."""
        if self.env.get("HERALD_AUDIT_EVENTS") != "false":
            args = ["token", "create", "--org", str(organisation_id)]
            for permission in permissions:
                args += ["--permission", permission]
            return self.cli(*args, "--database", self.database_url).stdout.strip().splitlines()[-1]
        with self._store() as store:
            secret, _ = issue_token(store, organisation_id=organisation_id, permissions=permissions)
            return secret

    @contextmanager
    def _store(self) -> Iterator[Store]:
        """The server's database, opened with its default retention (on PostgreSQL that
        decides which day partitions opening it creates)."""
        retention_days = float(self.env.get("HERALD_RETENTION_DAYS", DEFAULT_RETENTION_DAYS))
        store = open_store(self.database_url, retention_days=retention_days)
        try:
            yield store
        finally:
            store.close()


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
    # Security events are off unless a test asks: they would join every tenant's log.
    full_env = {
        **os.environ,
        "HERALD_SQLITE_SYNCHRONOUS": "NORMAL",
        "HERALD_AUDIT_EVENTS": "false",
        **(env or {}),
    }
    server = HeraldServer(
        workdir=workdir,
        database_url=database_url or f"sqlite:///{workdir / 'herald.db'}",
        port=free_port(),
        env=full_env,
    )
    server.start()
    return server
