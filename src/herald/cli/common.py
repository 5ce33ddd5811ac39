"""What the commands share: options, the store, the console, friendly failures.

Every ``herald`` command imports this module and its own, even for ``--help``: they import
the store, the settings, httpx and the rest inside the functions that use them, so that a
command costs only what it needs (``tests/cli/test_startup.py``).
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:
    import socket

    import httpx
    import uvicorn

    from herald.audit import AuditLog
    from herald.config import Settings
    from herald.store import Store

# Piped output is read by scripts and people alike: do not cut tables at 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=200)
errors = Console(stderr=True)

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        "-d",
        help="Database URL (default sqlite:///herald.db; env HERALD_DATABASE_URL).",
        show_default=False,
    ),
]


UrlOption = Annotated[str | None, typer.Option("--url", help="Herald URL (env HERALD_URL).")]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", envvar="HERALD_TOKEN", help="An API token.", show_default=False),
]


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a clear error (no traceback) and exit. ``message`` is printed as it is: text
    from a server or a user ("[/?#]") is never read as markup."""
    errors.print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def _no_pydantic_plugins() -> Iterator[None]:
    """Building the Settings model without pydantic's plugin scan (every installed package's
    entry points, ~5 ms): Herald has no plugin, and typer builds its parameters' adapters
    so too. Only while the class is built: later models (the server's) scan as usual."""
    before = os.environ.get("PYDANTIC_DISABLE_PLUGINS")
    os.environ["PYDANTIC_DISABLE_PLUGINS"] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ["PYDANTIC_DISABLE_PLUGINS"]
        else:
            os.environ["PYDANTIC_DISABLE_PLUGINS"] = before


def settings_for(database: str | None) -> Settings:
    """The settings (``--database`` over ``HERALD_DATABASE_URL``). A bad ``HERALD_*`` value
    stops the command: one line for each, naming the variable and what it takes; exit 2."""
    with _no_pydantic_plugins():
        from herald.config import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        for problem in exc.problems:
            errors.print(Text.assemble(("error:", "bold red"), " ", problem), soft_wrap=True)
        raise typer.Exit(2) from None
    return settings.model_copy(update={"database_url": database}) if database else settings


def missing_database(url: str) -> str | None:
    """Why a command that only uses a database cannot: its SQLite file does not exist (only
    serve, db migrate and simulate --backfill create one)."""
    if not url.startswith("sqlite:"):
        return None  # a PostgreSQL database that does not exist fails to connect
    from pathlib import Path

    from herald.store.sqlite import sqlite_path

    try:
        path = Path(sqlite_path(url))
    except ValueError as exc:
        return str(exc)
    if path.exists():
        return None
    return f"no database at {path}; create it with `herald db migrate` (or `herald serve`)"


def store_for(database: str | None, *, create: bool = False) -> Store:
    """The store a command works on, migrated; a clear error if it cannot open (or, unless
    ``create``, does not exist)."""
    from herald.store import StoreError, open_store

    settings = settings_for(database)
    missing = None if create else missing_database(settings.database_url)
    if missing is not None:
        fail(missing)
    try:
        return open_store(
            settings.database_url,
            sqlite_synchronous=settings.sqlite_synchronous,
            retention_days=settings.retention_days,
        )
    except (ValueError, StoreError) as exc:
        fail(f"cannot open database {settings.database_url}: {exc}")


def audit_for(store: Store, database: str | None) -> AuditLog:
    """The audit log of a command's actions (off when ``HERALD_AUDIT_EVENTS=false``)."""
    from herald.audit import AuditLog

    return AuditLog(store, enabled=settings_for(database).audit_events)


def api_url() -> str:
    return os.environ.get("HERALD_URL", "http://127.0.0.1:8080")


def api_client(url: str | None, token: str | None) -> httpx.Client:
    """A client of the API at ``url`` (or HERALD_URL) with ``token``; a clear error if no
    token is given."""
    import httpx

    if not token:
        fail("no token: pass --token or set HERALD_TOKEN")
    return httpx.Client(
        base_url=(url or api_url()).rstrip("/") + "/api/v1",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def api_failed(response: httpx.Response) -> NoReturn:
    """Fail with what the API answered: its problem's detail, or its text."""
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        problem = {}
    reason = problem.get("detail") or problem.get("title") or response.text
    fail(f"{response.status_code} {reason}")


def api_call(url: str | None, token: str | None, method: str, path: str, **kwargs: Any) -> Any:
    """One API call; its JSON answer, or a clear error (never a traceback) on failure."""
    import httpx

    with api_client(url, token) as client:
        try:
            response = client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            fail(f"cannot reach Herald at {client.base_url}: {exc}")
    if response.status_code >= 400:
        api_failed(response)
    return response.json() if response.content else None


def print_json(document: Any) -> None:
    """An API answer as indented JSON, as it is (never read as markup)."""
    import orjson

    text = orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()
    console.print(text, highlight=False, markup=False, soft_wrap=True)


def plain(value: object) -> Text:
    """A table cell or line of server or user text, shown as it is (never as markup)."""
    return Text("" if value is None else str(value))


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` for the server to listen on; a clear one-line error
    (before anything says the server runs) if the address is taken or not this machine's."""
    import socket

    # as uvicorn binds: IPv6 for an address with a colon, else IPv4 (names included). The
    # protocol is named: asyncio turns Nagle off (TCP_NODELAY) only on connections accepted
    # from a socket whose proto is IPPROTO_TCP; with proto 0 every keep-alive answer waited
    # ~40 ms for the client's delayed ACK.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        hint = ""
        if exc.errno == errno.EADDRINUSE:
            hint = " (another server uses it: stop it, or choose another port with --port)"
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}")
    sock.set_inheritable(True)
    return sock


def run_app(
    app: Any,
    sock: socket.socket,
    log_level: str,
    server: type[uvicorn.Server] | None = None,
    trusted_proxies: list[str] | None = None,
) -> None:
    """Serve ``app`` (ASGI) on ``sock`` (see ``listen``) until a stop signal, the garbage
    collector set for batches of events. uvicorn is imported here: the other commands start
    without the web stack.

    ``X-Forwarded-For``/``-Proto`` are believed only from ``trusted_proxies`` (uvicorn's
    own default trusts them from loopback: a client on the host could pick its address)."""
    import uvicorn

    from herald.collector import tune_for_batches

    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=list(trusted_proxies or []),
    )
    tune_for_batches()
    (server or uvicorn.Server)(config).run(sockets=[sock])
