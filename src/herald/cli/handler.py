"""``herald handler``: manage event handlers through the API."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer
from rich.table import Table

from herald.cli.common import api_url, console, fail

handler_app = typer.Typer(
    help="Event handlers (webhook, mqtt, nats, amqp, s3) through the API.", no_args_is_help=True
)

UrlOption = Annotated[str | None, typer.Option("--url", help="Herald URL (env HERALD_URL).")]
TokenOption = Annotated[
    str | None, typer.Option("--token", envvar="HERALD_TOKEN", help="Token (env HERALD_TOKEN).")
]
HandlerId = Annotated[int, typer.Argument(help="The handler's id (see handler list).")]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="A sink setting, KEY=VALUE (repeatable): topic, subject, exchange, routing_key, "
        "bucket, region, tls_verify=false, ca_cert=@ca.pem (a PEM file; ca_cert= removes it).",
    ),
]
CredentialOption = Annotated[
    list[str] | None,
    typer.Option(
        "--credential",
        help="A credential to set, by name (repeatable): username, password, token, "
        "access_key_id, secret_access_key, client_cert, client_key. Its value comes from "
        "HERALD_CREDENTIAL_<NAME>, a hidden prompt, or a file as NAME=@FILE (the PEMs: "
        "client_cert=@client.pem), never from the command line.",
    ),
]


def _settings(pairs: list[str] | None) -> dict[str, Any]:
    """``--set`` pairs as the API's ``settings``; true/false become booleans."""
    settings: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--set takes KEY=VALUE, not {pair!r}")
        if key == "ca_cert" and value.startswith("@"):
            settings[key] = _read(value[1:], "--set ca_cert")
        else:
            settings[key] = {"true": True, "false": False}.get(value, value)
    return settings


def _read(path: str, option: str) -> str:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{option}: cannot read {path}: {getattr(exc, 'strerror', None) or exc}")


def _credentials(names: list[str] | None) -> dict[str, str]:
    """Each named credential's value, from a file (NAME=@FILE), the environment or a hidden
    prompt."""
    credentials = {}
    for given in names or []:
        name, sep, source = given.partition("=")
        if sep and not source.startswith("@"):
            fail(f"--credential {name}: a value never goes on the command line; use {name}=@FILE")
        value = _read(source[1:], f"--credential {name}") if sep else None
        if value is None:
            value = os.environ.get(f"HERALD_CREDENTIAL_{name.upper()}")
        if value is None:
            value = typer.prompt(name, hide_input=True)
        credentials[name] = value
    return credentials


def _call(url: str | None, token: str | None, method: str, path: str, **kwargs: Any) -> Any:
    """One API call; a clear error (never a traceback) on failure."""
    if not token:
        fail("no token: pass --token or set HERALD_TOKEN")
    base = (url or api_url()).rstrip("/") + "/api/v1"
    try:
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as client:
            response = client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        fail(f"cannot reach Herald at {base}: {exc}")
    if response.status_code >= 400:
        try:
            problem = response.json()
        except ValueError:
            problem = {}
        reason = problem.get("detail") or problem.get("title") or response.text
        fail(f"{response.status_code} {reason}")
    return response.json() if response.content else None


def _print(document: Any) -> None:
    text = orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()
    console.print(text, highlight=False, markup=False, soft_wrap=True)  # as it is: JSON


@handler_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="A name for the handler.")],
    target: Annotated[
        str,
        typer.Argument(
            help="Where events go: a webhook URL; mqtt(s)://, nats:// or tls://, "
            "amqp(s)://host/vhost; or the S3 endpoint."
        ),
    ],
    type: Annotated[str, typer.Option(help="webhook, mqtt, nats, amqp or s3.")] = "webhook",
    set_: SetOption = None,
    credential: CredentialOption = None,
    format: Annotated[str, typer.Option(help="native, cloudevents or ndjson.")] = "native",
    filter: Annotated[
        str | None,
        typer.Option(help="Which events, in q syntax, e.g. 'type:3|5,alert:true'."),
    ] = None,
    max_events: Annotated[int, typer.Option(min=1, help="Events per request.")] = 1,
    max_wait_ms: Annotated[int, typer.Option(min=0, help="How long a batch may wait.")] = 0,
    max_bytes: Annotated[
        int | None, typer.Option(min=1, help="The most record bytes per batch (1 KiB-64 MiB).")
    ] = None,
    org: Annotated[int | None, typer.Option(help="Organisation (internal tokens).")] = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Create a handler; prints it (a webhook's with its signing secret, shown only now).

    e.g. ``herald handler create fleet mqtt://broker:1883 --type mqtt
    --set 'topic=herald/{organisation_id}/{event_type}'``
    """
    body: dict[str, Any] = {
        "name": name,
        "type": type,
        "url": target,
        "format": format,
        "batch": {"max_events": max_events, "max_wait_ms": max_wait_ms, "max_bytes": max_bytes},
    }
    if set_:
        body["settings"] = _settings(set_)
    if credential:
        body["credentials"] = _credentials(credential)
    if filter and filter.lstrip().startswith("{"):  # the JSON shape taken before 0.2
        try:
            body["filter"] = orjson.loads(filter)
        except orjson.JSONDecodeError as exc:
            fail(f"--filter is not JSON: {exc}")
    elif filter:
        body["filter"] = filter
    if org is not None:
        body["organisation_id"] = org
    _print(_call(url, token, "POST", "/event_handler", json=body))


@handler_app.command("list")
def list_(url: UrlOption = None, token: TokenOption = None) -> None:
    """List handlers."""
    table = Table("id", "org", "name", "type", "format", "url", "enabled")
    for handler in _call(url, token, "GET", "/event_handler"):
        table.add_row(
            str(handler["id"]),
            str(handler["organisation"]["id"]),
            handler["name"],
            handler["type"],
            handler["format"],
            handler["url"],
            "yes" if handler["enabled"] else f"no: {handler['disabled_reason']}",
        )
    console.print(table)


@handler_app.command("update")
def update(
    handler_id: HandlerId,
    target: Annotated[str | None, typer.Option("--target", help="A new URL.")] = None,
    name: Annotated[str | None, typer.Option(help="A new name.")] = None,
    set_: SetOption = None,
    credential: CredentialOption = None,
    clear_credentials: Annotated[bool, typer.Option(help="Remove the stored credentials.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Change a handler's URL, name, settings (merged) or credentials (replaced)."""
    body: dict[str, Any] = {}
    if target is not None:
        body["url"] = target
    if name is not None:
        body["name"] = name
    if set_:
        body["settings"] = _settings(set_)
    if credential or clear_credentials:
        body["credentials"] = _credentials(credential)
    if not body:
        fail("nothing to change: give --target, --name, --set or --credential")
    _print(_call(url, token, "PATCH", f"/event_handler/{handler_id}", json=body))


@handler_app.command("test")
def test(handler_id: HandlerId, url: UrlOption = None, token: TokenOption = None) -> None:
    """Send a test event now; prints what the receiver or broker answered."""
    _print(_call(url, token, "POST", f"/event_handler/{handler_id}/test"))


@handler_app.command("show")
def show(handler_id: HandlerId, url: UrlOption = None, token: TokenOption = None) -> None:
    """Show one handler."""
    _print(_call(url, token, "GET", f"/event_handler/{handler_id}"))


@handler_app.command("status")
def status(handler_id: HandlerId, url: UrlOption = None, token: TokenOption = None) -> None:
    """State, lag, failures, next attempt, where delivery runs."""
    _print(_call(url, token, "GET", f"/event_handler/{handler_id}/status"))


@handler_app.command("deliveries")
def deliveries(
    handler_id: HandlerId,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """The latest delivery attempts."""
    table = Table("time", "kind", "events", "status", "outcome", "ms", "error")
    path = f"/event_handler/{handler_id}/delivery"
    for entry in _call(url, token, "GET", path, params={"per_page": limit}):
        ids = entry["event_ids"]
        table.add_row(
            entry["time"],
            entry["kind"],
            str(ids[0]) + (f" +{len(ids) - 1}" if len(ids) > 1 else ""),
            str(entry["status"] or ""),
            entry["outcome"],
            str(entry["latency_ms"]),
            entry["error"] or "",
        )
    console.print(table)


@handler_app.command("replay")
def replay(
    handler_id: HandlerId,
    since: Annotated[str, typer.Option("--from", help="Start, e.g. 2026-11-01T00:00:00Z.")],
    until: Annotated[str | None, typer.Option(help="End (default now).")] = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Deliver a range of past events again."""
    body = {"from": since, **({"until": until} if until else {})}
    _print(_call(url, token, "POST", f"/event_handler/{handler_id}/replay", json=body))


def _set_enabled(handler_id: int, enabled: bool, url: str | None, token: str | None) -> None:
    path = f"/event_handler/{handler_id}"
    handler = _call(url, token, "PATCH", path, json={"enabled": enabled})
    console.print(f"Handler {handler['id']} {'enabled' if handler['enabled'] else 'disabled'}.")


@handler_app.command("enable")
def enable(handler_id: HandlerId, url: UrlOption = None, token: TokenOption = None) -> None:
    """Enable a handler: it resumes where it stopped."""
    _set_enabled(handler_id, True, url, token)


@handler_app.command("disable")
def disable(handler_id: HandlerId, url: UrlOption = None, token: TokenOption = None) -> None:
    """Disable a handler (its cursor stays)."""
    _set_enabled(handler_id, False, url, token)


@handler_app.command("delete")
def delete(handler_id: HandlerId, url: UrlOption = None, token: TokenOption = None) -> None:
    """Delete a handler."""
    _call(url, token, "DELETE", f"/event_handler/{handler_id}")
    console.print(f"Handler {handler_id} deleted.")
