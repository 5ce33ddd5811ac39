"""``herald org``, ``herald token`` and ``herald events`` as a user runs them."""

from __future__ import annotations

import json

from tests.support.herald import Herald


def test_org_and_token_lifecycle(herald: Herald) -> None:
    db = ["--database", herald.database_url]
    created = herald.cli("org", "create", "Acme IoT", *db).stdout.splitlines()
    org = int(created[-1])
    assert "Acme IoT" in herald.cli("org", "list", *db).stdout
    twin = herald.cli("org", "create", " acme iot ", *db, check=False)
    assert twin.returncode == 1
    assert f"an organisation named 'acme iot' exists already (id {org})" in twin.stderr
    marked_up = herald.cli("org", "create", "[/?#] [bold]x", *db).stdout  # printed as it is
    assert "Created organisation [/?#] [bold]x" in marked_up
    assert "[/?#] [bold]x" in herald.cli("org", "list", *db).stdout
    chosen = herald.cli("org", "create", "Chosen", "--id", "891418", *db).stdout
    assert chosen.splitlines()[-1] == "891418"

    token = herald.cli("token", "create", "--org", str(org), "-p", "event:read", *db)
    secret = token.stdout.splitlines()[-1]
    assert secret.startswith("hrd_")
    internal = herald.cli("token", "create", "--internal", *db).stdout.splitlines()[-1]
    assert internal.startswith("hrd_") and internal != secret
    listing = herald.cli("token", "list", *db).stdout
    assert secret not in listing and internal not in listing
    assert secret[:12] in listing  # the prefix identifies it

    switched = herald.cli("org", "device-events", str(org), "on", *db).stdout
    assert f"Organisation {org} writes status changes as events" in switched
    with herald.client(secret) as client:
        answer = client.get(f"/organisation/{org}/device_events").json()
    assert answer["enabled"] is True
    switched = herald.cli("org", "device-events", str(org), "off", *db).stdout
    assert "does not write" in switched


def test_cli_errors_are_messages_not_tracebacks(herald: Herald) -> None:
    db = ["--database", herald.database_url]
    cases = [
        (["org", "create", "Twice", "--id", "1"], "exists already"),
        (["token", "create", "--org", "4242", "-p", "event:read"], "no organisation 4242"),
        (["token", "create", "--org", "1", "-p", "event:fly"], "unknown permission"),
        (["token", "create", "--org", "1", "--internal"], "either --org"),
        (["token", "create", "--org", "1"], "at least one --permission"),
        (["token", "revoke", "999"], "no token 999"),
        (["org", "device-events", "4242", "on"], "no organisation 4242"),
        (["org", "device-events", "1", "maybe"], "'maybe' is not one of 'on', 'off'"),
    ]
    for args, message in cases:
        result = herald.cli(*args, *db, check=False)
        assert result.returncode != 0, args
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout
    bad_url = herald.cli("org", "list", "--database", "mysql://nowhere", check=False)
    assert bad_url.returncode != 0 and "unsupported database URL" in bad_url.stderr


def test_events_list_through_the_api(herald: Herald) -> None:
    org = herald.create_org("Listers")
    token = herald.create_token(org, "event:read", "event:create")
    with herald.client(token) as client:
        client.post("/event", json=[{"event_type": {"id": 10007}, "description": "door open"}])
    env = ["--url", herald.url, "--token", token]
    table = herald.cli("events", "list", *env).stdout
    assert "door open" in table and "10007" in table
    records = json.loads(herald.cli("events", "list", "--json", "-q", "type:10007", *env).stdout)
    assert [r["description"] for r in records] == ["door open"]
    refused = herald.cli("events", "list", "-q", "colour:red", *env, check=False)
    assert refused.returncode != 0 and "422" in refused.stderr
    unauthorised = herald.cli(
        "events", "list", "--url", herald.url, "--token", "hrd_x", check=False
    )
    assert unauthorised.returncode != 0 and "401" in unauthorised.stderr
