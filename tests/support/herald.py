"""What a test holds of a running Herald, in its own process or in the test's: its URL, the
internal admin token, its database, HTTP clients and the CLI against that database."""

from __future__ import annotations

import subprocess
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from herald.auth import issue_token
from herald.config import Settings
from herald.store import Store, open_store
from herald.store.sqlite import sqlite_path

HERALD = [sys.executable, "-m", "herald"]
DEFAULT_RETENTION_DAYS = Settings.model_fields["retention_days"].default
TEST_ENV = {"HERALD_SQLITE_SYNCHRONOUS": "NORMAL", "HERALD_AUDIT_EVENTS": "false"}
"""What every test server runs with unless a test says otherwise: security events are off
(they would join every tenant's log)."""


@dataclass
class Herald(ABC):
    """A running Herald over ``database_url``; ``env`` is its environment (``HERALD_*``)."""

    workdir: Path
    database_url: str
    env: dict[str, str]
    admin_token: str = field(default="", kw_only=True)

    @property
    @abstractmethod
    def url(self) -> str:
        """Its root on loopback: ``http://127.0.0.1:PORT``."""

    @abstractmethod
    def stop(self) -> None:
        """A graceful stop, as on SIGTERM."""

    @abstractmethod
    def restart(self) -> None:
        """Stop, then start again over the same database with the settings ``env`` holds."""

    @property
    def log_file(self) -> Path:
        """What it logs: the process's output, or the app's log records when in process."""
        return self.workdir / "server.log"

    def log(self) -> str:
        path = self.log_file
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def admin_token_file(self) -> Path:
        """Where the first start writes the admin token: beside a SQLite file, else in cwd."""
        if self.database_url.startswith("sqlite:"):
            return Path(sqlite_path(self.database_url) + ".admin-token")
        return self.workdir / "herald.admin-token"

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, timeout=30)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``herald ARGS`` (a process of its own) in this server's directory and env."""
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
        with self.store() as store:
            return store.organisations.create(name, organisation_id).id

    def create_token(self, organisation_id: int, *permissions: str) -> str:
        """A tenant token's secret, as ``herald token create`` issues it (through the store
        too, unless the server records security events: the CLI then records its own)."""
        if self.env.get("HERALD_AUDIT_EVENTS") != "false":
            args = ["token", "create", "--org", str(organisation_id)]
            for permission in permissions:
                args += ["--permission", permission]
            return self.cli(*args, "--database", self.database_url).stdout.strip().splitlines()[-1]
        with self.store() as store:
            secret, _ = issue_token(store, organisation_id=organisation_id, permissions=permissions)
            return secret

    @contextmanager
    def store(self) -> Iterator[Store]:
        """The server's database, opened with its default retention (on PostgreSQL that
        decides which day partitions opening it creates)."""
        retention_days = float(self.env.get("HERALD_RETENTION_DAYS", DEFAULT_RETENTION_DAYS))
        store = open_store(self.database_url, retention_days=retention_days)
        try:
            yield store
        finally:
            store.close()
