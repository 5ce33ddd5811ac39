"""``herald events``: list and follow events through the API."""

from __future__ import annotations

import time
from typing import Annotated, Any, NoReturn

import httpx
import orjson
import typer
from rich.table import Table

from herald.cli.common import api_url, console, errors, fail

events_app = typer.Typer(help="Read events through the API.", no_args_is_help=True)

UrlOption = Annotated[str | None, typer.Option("--url", help="Herald URL (env HERALD_URL).")]
TokenOption = Annotated[
    str | None, typer.Option("--token", envvar="HERALD_TOKEN", help="Token (env HERALD_TOKEN).")
]
QueryOption = Annotated[
    str | None, typer.Option("--q", "-q", help="Filter, e.g. type:3|5,severity:1,from:2026-11-01")
]


def _client(url: str | None, token: str | None) -> httpx.Client:
    if not token:
        fail("no token: pass --token or set HERALD_TOKEN")
    return httpx.Client(
        base_url=(url or api_url()).rstrip("/") + "/api/v1",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def _get(client: httpx.Client, path: str, params: dict[str, Any]) -> httpx.Response:
    try:
        response = client.get(path, params={k: v for k, v in params.items() if v is not None})
    except httpx.HTTPError as exc:
        fail(f"cannot reach Herald at {client.base_url}: {exc}")
    if response.status_code >= 400:
        _get_failed(response)
    return response


def _get_failed(response: httpx.Response) -> NoReturn:
    problem = response.json() if response.headers.get("content-type", "").endswith("json") else {}
    reason = problem.get("detail") or problem.get("title") or response.text
    fail(f"{response.status_code} {reason}")


def _table(events: list[dict[str, Any]]) -> Table:
    table = Table("id", "timestamp", "type", "severity", "source", "endpoint", "description")
    for event in events:
        endpoint = event.get("endpoint") or {}
        table.add_row(
            str(event["id"]),
            event["timestamp"],
            f"{event['event_type']['id']} {event['event_type']['description']}",
            event["event_severity"]["description"],
            event["event_source"]["description"],
            str(endpoint.get("name") or endpoint.get("id") or ""),
            event.get("description", ""),
        )
    return table


@events_app.command("list")
def list_events(
    q: QueryOption = None,
    sort: Annotated[str | None, typer.Option(help="e.g. -timestamp")] = None,
    page: Annotated[int, typer.Option(min=1)] = 1,
    per_page: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the records as JSON.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """List events, newest first, with the API's filters."""
    with _client(url, token) as client:
        response = _get(
            client, "/event", {"q": q, "sort": sort, "page": page, "per_page": per_page}
        )
    events = response.json()
    if as_json:
        console.print_json(orjson.dumps(events).decode())
        return
    console.print(_table(events))
    console.print(
        f"page {response.headers.get('X-Current-Page')} of {response.headers.get('X-Total-Pages')}"
        f" · {response.headers.get('X-Total-Count')} events"
    )


@events_app.command("tail")
def tail_events(
    q: QueryOption = None,
    interval: Annotated[
        float, typer.Option(help="Seconds before reconnecting after a drop.", min=0.1)
    ] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON record per line.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Follow new events as they arrive, over the live stream (Ctrl-C stops).

    A dropped connection resumes after the last event received (``Last-Event-ID``).
    """
    last_id: str | None = None
    with _client(url, token) as client:
        try:
            while True:
                try:
                    last_id = _follow(client, q, last_id, as_json)
                except httpx.TransportError as exc:
                    errors.print(f"[yellow]stream interrupted ({exc}); reconnecting[/]")
                time.sleep(interval)
        except KeyboardInterrupt:
            return


def _follow(client: httpx.Client, q: str | None, last_id: str | None, as_json: bool) -> str | None:
    """Print the stream's events until it ends; return the id of the last one."""
    headers = {"Last-Event-ID": last_id} if last_id else {}
    timeout = httpx.Timeout(30, read=60)  # heartbeats arrive every 15 s
    params = {"q": q} if q else {}
    with client.stream(
        "GET", "/event/stream", params=params, headers=headers, timeout=timeout
    ) as response:
        if response.status_code >= 400:
            response.read()
            _get_failed(response)
        data: str | None = None
        kind = "event"
        for line in response.iter_lines():
            if line.startswith("id: "):
                last_id = line[4:]
            elif line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif not line and data is not None and kind == "closed":
                reason = orjson.loads(data).get("reason", "")
                errors.print(f"[yellow]the server closed the stream ({reason})[/]")
            elif not line and data is not None:
                event = orjson.loads(data)
                if as_json:
                    console.print(data, highlight=False, soft_wrap=True)
                else:
                    console.print(_table([event]))
            if not line:
                data, kind = None, "event"
    return last_id
