"""``herald rule``: manage rules, read their alerts and preview them, through the API."""

from __future__ import annotations

import enum
from typing import Annotated, Any

import typer

from herald.cli.common import TokenOption, UrlOption, api_call, console, fail, plain, print_json

rule_app = typer.Typer(
    help="Rules and their alerts (count, absence, state, threshold) through the API.",
    no_args_is_help=True,
)


class Kind(enum.StrEnum):
    COUNT = "count"
    ABSENCE = "absence"
    STATE = "state"
    THRESHOLD = "threshold"


class Group(enum.StrEnum):
    ENDPOINT = "endpoint"
    SIM = "sim"
    USER = "user"
    TARGET = "target"
    ORGANISATION = "organisation"


class Period(enum.StrEnum):
    DAY = "day"
    MONTH = "month"


RuleId = Annotated[int, typer.Argument(help="The rule's id (see rule list).")]
KindOption = Annotated[Kind, typer.Option(help="The condition.")]
QOption = Annotated[
    str | None, typer.Option("--q", help="Which events, in q syntax, e.g. 'type:7' ('' for all).")
]
GroupOption = Annotated[Group, typer.Option(help="One alert per endpoint, sim, user...")]
CountOption = Annotated[int | None, typer.Option(min=1, help="count: events in the window.")]
WindowOption = Annotated[
    float | None, typer.Option("--window", min=0, help="count, absence, state: seconds.")
]
StatusOption = Annotated[
    list[str] | None,
    typer.Option("--status", help="state: ATTACHED, ONLINE, OFFLINE or BLOCKED (repeatable)."),
]
MegabytesOption = Annotated[float | None, typer.Option(help="threshold: MB of data.")]
PeriodOption = Annotated[Period | None, typer.Option(help="threshold: day (default) or month.")]
HoldDownOption = Annotated[
    float | None, typer.Option("--hold-down", min=0, help="Seconds a resolved alert stays quiet.")
]
OrgOption = Annotated[int | None, typer.Option(help="Organisation (internal tokens).")]


def _condition(
    kind: Kind,
    count: int | None,
    window: float | None,
    status: list[str] | None,
    megabytes: float | None,
    period: Period | None,
) -> dict[str, Any]:
    """The options as the API's ``condition`` (the API checks which a kind takes)."""
    given = {
        "kind": kind.value,
        "count": count,
        "window_seconds": window,
        "statuses": [s.upper() for s in status] if status else None,
        "megabytes": megabytes,
        "period": period.value if period else None,
    }
    return {key: value for key, value in given.items() if value is not None}


@rule_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="A name for the rule.")],
    kind: KindOption,
    q: QOption = None,
    group: GroupOption = Group.ENDPOINT,
    count: CountOption = None,
    window: WindowOption = None,
    status: StatusOption = None,
    megabytes: MegabytesOption = None,
    period: PeriodOption = None,
    hold_down: HoldDownOption = None,
    disabled: Annotated[bool, typer.Option(help="Create it disabled.")] = False,
    org: OrgOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Create a rule; prints it.

    Example: herald rule create 'attach failures' --kind count --q type:7 --count 5 --window 600
    """
    body: dict[str, Any] = {
        "name": name,
        "group": group.value,
        "condition": _condition(kind, count, window, status, megabytes, period),
        "enabled": not disabled,
    }
    extra = {"q": q, "hold_down_seconds": hold_down, "organisation_id": org}
    body.update({key: value for key, value in extra.items() if value is not None})
    print_json(api_call(url, token, "POST", "/rule", json=body))


def _summary(condition: dict[str, Any]) -> str:
    kind = condition["kind"]
    if kind == "count":
        return f"count {condition['count']} in {condition['window_seconds']:g} s"
    if kind == "absence":
        return f"absence for {condition['window_seconds']:g} s"
    if kind == "state":
        return f"{'|'.join(condition['statuses'])} for {condition['window_seconds']:g} s"
    return f"{condition['megabytes']:g} MB a {condition['period']}"


def _groups(rule: dict[str, Any]) -> str:
    """The groups it tracks, and those it refused at its limit (since when)."""
    shown = str(rule["groups"])
    if rule.get("groups_refused"):
        shown += f" (limit: {rule['groups_refused']} refused since {rule['refused_since']})"
    return shown


@rule_app.command("list")
def list_(url: UrlOption = None, token: TokenOption = None) -> None:
    """List rules, each with its alerts firing now, its groups and those refused at the
    limit (HERALD_MAX_GROUPS_PER_RULE)."""
    from rich.table import Table

    table = Table("id", "org", "name", "q", "group", "condition", "alerts", "groups", "enabled")
    for rule in api_call(url, token, "GET", "/rule"):
        table.add_row(
            str(rule["id"]),
            str(rule["organisation_id"]),
            plain(rule["name"]),
            plain(rule["q"]),
            rule["group"],
            _summary(rule["condition"]),
            str(rule["alerts"]),
            _groups(rule),
            "yes" if rule["enabled"] else "no",
        )
    console.print(table)


@rule_app.command("show")
def show(rule_id: RuleId, url: UrlOption = None, token: TokenOption = None) -> None:
    """Print one rule."""
    print_json(api_call(url, token, "GET", f"/rule/{rule_id}"))


@rule_app.command("update")
def update(
    rule_id: RuleId,
    name: Annotated[str | None, typer.Option(help="A new name.")] = None,
    q: QOption = None,
    kind: Annotated[Kind | None, typer.Option(help="A new condition (with its options).")] = None,
    count: CountOption = None,
    window: WindowOption = None,
    status: StatusOption = None,
    megabytes: MegabytesOption = None,
    period: PeriodOption = None,
    hold_down: HoldDownOption = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Evaluate it, or not.")
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Change a rule (a new q, condition or --enable/--disable starts it afresh); prints it."""
    body: dict[str, Any] = {
        key: value
        for key, value in {
            "name": name,
            "q": q,
            "hold_down_seconds": hold_down,
            "enabled": enabled,
        }.items()
        if value is not None
    }
    if kind is not None:
        body["condition"] = _condition(kind, count, window, status, megabytes, period)
    elif any(v is not None for v in (count, window, status, megabytes, period)):
        fail("a condition's options go with --kind")
    if not body:
        fail("nothing to change")
    print_json(api_call(url, token, "PATCH", f"/rule/{rule_id}", json=body))


@rule_app.command("delete")
def delete(rule_id: RuleId, url: UrlOption = None, token: TokenOption = None) -> None:
    """Delete a rule; it stops firing at once."""
    api_call(url, token, "DELETE", f"/rule/{rule_id}")
    console.print(f"Rule {rule_id} deleted")


@rule_app.command("alerts")
def alerts(url: UrlOption = None, token: TokenOption = None) -> None:
    """The alerts firing now, oldest first."""
    from rich.table import Table

    table = Table("rule", "name", "org", "group", "key", "fired", "age (s)")
    for alert in api_call(url, token, "GET", "/rule/alert"):
        table.add_row(
            str(alert["rule"]["id"]),
            plain(alert["rule"]["name"]),
            str(alert["organisation_id"]),
            alert["group"]["by"],
            plain(alert["group"]["key"]),
            alert["fired"],
            str(alert["age_seconds"]),
        )
    console.print(table)


@rule_app.command("preview")
def preview(
    kind: KindOption,
    from_: Annotated[str, typer.Option("--from", help="Start of the range (ISO 8601).")],
    until: Annotated[str | None, typer.Option(help="End of the range (default: now).")] = None,
    q: QOption = None,
    group: GroupOption = Group.ENDPOINT,
    count: CountOption = None,
    window: WindowOption = None,
    status: StatusOption = None,
    megabytes: MegabytesOption = None,
    period: PeriodOption = None,
    hold_down: HoldDownOption = None,
    org: OrgOption = None,
    progress: Annotated[
        bool, typer.Option(help="Show the server's progress through the range (stderr).")
    ] = True,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """How many times, and for which groups, a rule would have fired over a past range
    (with a progress bar while the server reads it)."""
    body: dict[str, Any] = {
        "group": group.value,
        "condition": _condition(kind, count, window, status, megabytes, period),
        "from": from_,
    }
    extra = {"until": until, "q": q, "hold_down_seconds": hold_down, "organisation_id": org}
    body.update({key: value for key, value in extra.items() if value is not None})
    if not progress:
        print_json(api_call(url, token, "POST", "/rule/preview", json=body))
        return
    from herald.cli.rule_preview import preview_with_progress

    print_json(preview_with_progress(url, token, body))
