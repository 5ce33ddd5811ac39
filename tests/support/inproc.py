"""Herald's real app served in the test's own process: ``create_app(settings)`` with its
lifespan (the real store on the test's database), run by uvicorn in a thread on a loopback
port, so that tests reach it over HTTP as they reach ``herald serve``, streams included.

It starts in a fraction of the time a ``herald serve`` process takes (no interpreter to
start, nothing to import) and leaves no process behind. While it runs, the test process's
log records go to its ``log()`` (``server.log`` in its workdir), as a process's output
would. Tests whose subject is the process itself (signals, kill -9, its memory, the CLI
starting it) use ``tests.support.server``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from herald.api import create_app
from herald.api.routes.stream import end_live_streams
from herald.auth import issue_token
from herald.cli.common import listen
from herald.config import ENV_PREFIX, Settings
from tests.support.herald import TEST_ENV, Herald

STOP_SECONDS = 30
"""How long a stop may take (it drains deliveries in flight) before connections are cut."""


@dataclass
class InProcessHerald(Herald):
    """The app of ``herald serve`` over this server's settings, in a thread of the test."""

    _app: FastAPI | None = field(default=None, init=False, repr=False)
    _server: uvicorn.Server | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    port: int = field(default=0, init=False)
    """Its loopback port (a new one on each start)."""
    _log: logging.Handler | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def app(self) -> FastAPI:
        """The running app (its services are ``app.state.services``)."""
        assert self._app is not None, "not started"
        return self._app

    def settings(self) -> Settings:
        """The settings ``herald serve --no-demo`` reads from this server's environment."""
        given = {
            key[len(ENV_PREFIX) :].lower(): value
            for key, value in self.env.items()
            if key.upper().startswith(ENV_PREFIX)
        }
        if not self.database_url.startswith("sqlite:"):
            # where herald serve, run in the workdir, keeps it: not in the test's cwd
            given.setdefault("secret_key_file", str(self.workdir / "herald.secret-key"))
        return Settings(**{**given, "database_url": self.database_url, "demo": False})

    def start(self) -> None:
        """Serve a new app on a new loopback port; returns once its lifespan has started
        (a failed start raises, with no thread left running)."""
        settings = self.settings()
        self._bootstrap(settings)
        sock = listen("127.0.0.1", 0)
        self.port = sock.getsockname()[1]
        self._app = create_app(settings)
        config = uvicorn.Config(  # as herald.cli.common.run_app configures it
            self._app,
            log_config=None,  # the test process's logging stays as pytest set it
            log_level=settings.log_level,
            access_log=False,
            proxy_headers=bool(settings.trusted_proxy_list),
            forwarded_allow_ips=list(settings.trusted_proxy_list),
        )
        server = self._server = uvicorn.Server(config)
        thread = self._thread = threading.Thread(
            target=_serve, args=(server, sock), name=f"herald:{self.port}", daemon=True
        )
        self._capture_log()
        thread.start()
        while not server.started:
            if not thread.is_alive():
                sock.close()
                self._release_log()
                raise RuntimeError(f"the in-process app did not start: {self.log()[-2000:]}")
            time.sleep(0.005)

    def _capture_log(self) -> None:
        """Every log record of the test's process, as ``herald serve``'s output holds them
        (the tests read the app's log: what it says, and that no secret is in it)."""
        handler = self._log = logging.FileHandler(self.log_file, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)

    def _release_log(self) -> None:
        if self._log is not None:
            logging.getLogger().removeHandler(self._log)
            self._log.close()
            self._log = None

    def _bootstrap(self, settings: Settings) -> None:
        """What ``herald serve`` does first on a database without tokens (its ``bootstrap``):
        a first organisation and an internal admin token, kept here rather than in a file."""
        with self.store() as store:
            if not self.admin_token and not store.organisations.count_tokens():
                if not store.organisations.all():
                    store.organisations.create("My organisation")
                self.admin_token, _ = issue_token(
                    store, organisation_id=None, permissions=[], internal=True, name="bootstrap"
                )

    def stop(self) -> None:
        """A graceful stop, as on SIGTERM: live streams end, the lifespan's shutdown runs."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        end_live_streams(self._app)
        server.should_exit = True
        thread.join(STOP_SECONDS)
        if thread.is_alive():
            server.force_exit = True
            thread.join(STOP_SECONDS)
        self._thread = None
        self._release_log()

    def restart(self) -> None:
        """A new app over the same database, with the settings ``env`` now holds."""
        self.stop()
        self.start()


def _serve(server: uvicorn.Server, sock: socket.socket) -> None:
    try:
        server.run(sockets=[sock])
    except SystemExit:  # uvicorn's exit when the lifespan fails to start: start() raises
        pass


def start_in_process(
    workdir: Path, env: dict[str, str] | None = None, database_url: str | None = None
) -> InProcessHerald:
    """Start Herald's app in this process on a free loopback port, with the environment and
    database ``start_server`` would give ``herald serve`` (a fresh SQLite file in ``workdir``
    by default)."""
    workdir.mkdir(parents=True, exist_ok=True)
    herald = InProcessHerald(
        workdir=workdir,
        database_url=database_url or f"sqlite:///{workdir / 'herald.db'}",
        env={**os.environ, **TEST_ENV, **(env or {})},
    )
    herald.start()
    return herald
