"""``herald handler``: manage event handlers through the API."""

from __future__ import annotations

import enum
import os
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from herald.cli.common import (
    TokenOption,
    UrlOption,
    api_call,
    console,
    fail,
    plain,
    print_json,
)

handler_app = typer.Typer(
    help="Event handlers (webhook, mqtt, nats, amqp, s3) through the API.", no_args_is_help=True
)


class HandlerType(enum.StrEnum):
    WEBHOOK = "webhook"
    MQTT = "mqtt"
    NATS = "nats"
    AMQP = "amqp"
    S3 = "s3"


class Format(enum.StrEnum):
    NATIVE = "native"
    CLOUDEVENTS = "cloudevents"
    NDJSON = "ndjson"
    STACUITY = "stacuity"


HandlerId = Annotated[int, typer.Argument(help="The handler's id (see handler list).")]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="A sink setting, KEY=VALUE (repeatable): topic, subject, exchange, routing_key, "
        "bucket, region, tls_verify=false, ca_cert=@ca.pem (a PEM file; ca_cert= removes it); "
        "a webhook's timeout_seconds=5.",
    ),
]
HeaderOption = Annotated[
    list[str] | None,
    typer.Option(
        "--header",
        help="A webhook's custom request header, NAME=VALUE (repeatable, at most 10; given, "
        "they replace the current ones; --header '' removes them all).",
    ),
]
CredentialOption = Annotated[
    list[str] | None,
    typer.Option(
        "--credential",
        help="A credential to set, by name (repeatable): username, password, token, "
        "access_key_id, secret_access_key, client_cert, client_key. Its value comes from "
        "HERALD_CREDENTIAL_<NAME>, a hidden prompt, or a file as NAME=@FILE (the PEMs: "
        "client_cert=@client.pem), never from the command line. A webhook's authenticate it "
        "to its receiver: token (Bearer), or username and password (Basic).",
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
        elif key == "timeout_seconds":
            try:
                settings[key] = float(value)
            except ValueError:
                fail(f"--set timeout_seconds takes a number of seconds, not {value!r}")
        else:
            settings[key] = {"true": True, "false": False}.get(value, value)
    return settings


def _headers(pairs: list[str]) -> dict[str, str]:
    """``--header`` pairs as the API's ``settings.headers`` (``''``: none)."""
    headers: dict[str, str] = {}
    for pair in pairs:
        if pair == "":
            continue
        name, sep, value = pair.partition("=")
        if not sep or not name:
            fail(f"--header takes NAME=VALUE, not {pair!r}")
        headers[name] = value
    return headers


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


FormatOption = Annotated[Format, typer.Option(help="How events are written.")]
FilterOption = Annotated[
    str | None,
    typer.Option(help="Which events, in q syntax, e.g. 'type:3|5,alert:true' ('' for all)."),
]
MaxEventsOption = Annotated[int, typer.Option(min=1, max=10_000, help="Events per request.")]
MaxWaitOption = Annotated[
    int, typer.Option(min=0, max=60_000, help="Milliseconds a batch may wait to fill.")
]
MaxBytesOption = Annotated[
    int | None,
    typer.Option(min=1024, max=64 * 1024 * 1024, help="The most record bytes per batch."),
]


def _filter(text: str) -> Any:
    """``--filter`` as the API takes it: q syntax, or the JSON shape taken before 0.2."""
    if not text.lstrip().startswith("{"):
        return text
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        fail(f"--filter is not JSON: {exc}")


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
    type: Annotated[HandlerType, typer.Option(help="The kind of target.")] = HandlerType.WEBHOOK,
    set_: SetOption = None,
    header: HeaderOption = None,
    credential: CredentialOption = None,
    format: FormatOption = Format.NATIVE,
    filter: FilterOption = None,
    max_events: MaxEventsOption = 1,
    max_wait_ms: MaxWaitOption = 0,
    max_bytes: MaxBytesOption = None,
    org: Annotated[int | None, typer.Option(help="Organisation (internal tokens).")] = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Create a handler; prints it (a webhook's with its signing secret, shown only now).

    Example: herald handler create fleet mqtt://broker:1883 --type mqtt
    --set 'topic=herald/{organisation_id}/{event_type}'
    """
    body: dict[str, Any] = {
        "name": name,
        "type": type.value,
        "url": target,
        "format": format.value,
        "batch": {"max_events": max_events, "max_wait_ms": max_wait_ms, "max_bytes": max_bytes},
    }
    if set_ or header is not None:
        body["settings"] = _settings(set_)
    if header is not None:
        body["settings"]["headers"] = _headers(header)
    if credential:
        body["credentials"] = _credentials(credential)
    if filter is not None:
        body["filter"] = _filter(filter)
    if org is not None:
        body["organisation_id"] = org
    print_json(api_call(url, token, "POST", "/event_handler", json=body))


@handler_app.command("list")
def list_(url: UrlOption = None, token: TokenOption = None) -> None:
    """List handlers."""
    from rich.table import Table

    table = Table("id", "org", "name", "type", "format", "url", "enabled")
    for handler in api_call(url, token, "GET", "/event_handler"):
        table.add_row(
            str(handler["id"]),
            str(handler["organisation"]["id"]),
            plain(handler["name"]),
            handler["type"],
            handler["format"],
            plain(handler["url"]),
            "yes" if handler["enabled"] else plain(f"no: {handler['disabled_reason']}"),
        )
    console.print(table)


@handler_app.command("update")
def update(
    handler_id: HandlerId,
    target: Annotated[str | None, typer.Option("--target", help="A new URL.")] = None,
    name: Annotated[str | None, typer.Option(help="A new name.")] = None,
    set_: SetOption = None,
    header: HeaderOption = None,
    credential: CredentialOption = None,
    clear_credentials: Annotated[bool, typer.Option(help="Remove the stored credentials.")] = False,
    format: Annotated[Format | None, typer.Option(help="How events are written.")] = None,
    filter: FilterOption = None,
    max_events: Annotated[
        int | None, typer.Option(min=1, max=10_000, help="Events per request.")
    ] = None,
    max_wait_ms: Annotated[
        int | None, typer.Option(min=0, max=60_000, help="Milliseconds a batch may wait to fill.")
    ] = None,
    max_bytes: MaxBytesOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Change a handler's URL, name, format, filter, batch (the options given; the others
    stay), settings (merged) or credentials (replaced)."""
    body: dict[str, Any] = {}
    if target is not None:
        body["url"] = target
    if name is not None:
        body["name"] = name
    if format is not None:
        body["format"] = format.value
    if filter is not None:
        body["filter"] = _filter(filter)
    if set_ or header is not None:
        body["settings"] = _settings(set_)
    if header is not None:
        body["settings"]["headers"] = _headers(header)
    if credential or clear_credentials:
        body["credentials"] = _credentials(credential)
    batch = {"max_events": max_events, "max_wait_ms": max_wait_ms, "max_bytes": max_bytes}
    if any(value is not None for value in batch.values()):
        # the API replaces the whole batch: keep what is not given
        current = api_call(url, token, "GET", f"/event_handler/{handler_id}")["batch"]
        body["batch"] = {**current, **{k: v for k, v in batch.items() if v is not None}}
    if not body:
        fail(
            "nothing to change: give --target, --name, --format, --filter, --max-events, "
            "--max-wait-ms, --max-bytes, --set, --header or --credential"
        )
    print_json(api_call(url, token, "PATCH", f"/event_handler/{handler_id}", json=body))


@handler_app.command("test")
def test(handler_id: HandlerId, url: UrlOption = None, token: TokenOption = None) -> None:
    """Send a test event now; prints what the receiver or broker answered. Exits 1 unless it
    was delivered."""
    answer = api_call(url, token, "POST", f"/event_handler/{handler_id}/test")
    print_json(answer)
    if answer.get("outcome") != "delivered":
        reason = answer.get("error") or f"status {answer.get('status')}"
        fail(f"the test event was not delivered ({answer.get('outcome')}: {reason})")


@handler_app.command("show")
def show(handler_id: HandlerId, url: UrlOption = None, token: TokenOption = None) -> None:
    """Show one handler."""
    print_json(api_call(url, token, "GET", f"/event_handler/{handler_id}"))


@handler_app.command("status")
def status(handler_id: HandlerId, url: UrlOption = None, token: TokenOption = None) -> None:
    """State, lag, failures, next attempt, where delivery runs."""
    print_json(api_call(url, token, "GET", f"/event_handler/{handler_id}/status"))


@handler_app.command("deliveries")
def deliveries(
    handler_id: HandlerId,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """The latest delivery attempts."""
    from rich.table import Table

    table = Table("time", "kind", "events", "status", "outcome", "ms", "error")
    path = f"/event_handler/{handler_id}/delivery"
    for entry in api_call(url, token, "GET", path, params={"per_page": limit}):
        ids = entry["event_ids"]
        table.add_row(
            entry["time"],
            entry["kind"],
            str(ids[0]) + (f" +{len(ids) - 1}" if len(ids) > 1 else ""),
            str(entry["status"] or ""),
            entry["outcome"],
            str(entry["latency_ms"]),
            plain(entry["error"]),
        )
    console.print(table)


@handler_app.command("replay")
def replay(
    handler_id: HandlerId,
    since: Annotated[
        str, typer.Option("--from", help="Start, an ISO 8601 time: 2026-11-01T00:00:00Z.")
    ],
    until: Annotated[str | None, typer.Option(help="End, the same way (default now).")] = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Deliver a range of past events again."""
    body = {"from": since, **({"until": until} if until else {})}
    print_json(api_call(url, token, "POST", f"/event_handler/{handler_id}/replay", json=body))


def _set_enabled(handler_id: int, enabled: bool, url: str | None, token: str | None) -> None:
    path = f"/event_handler/{handler_id}"
    handler = api_call(url, token, "PATCH", path, json={"enabled": enabled})
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
    api_call(url, token, "DELETE", f"/event_handler/{handler_id}")
    console.print(f"Handler {handler_id} deleted.")
