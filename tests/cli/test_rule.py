"""``herald rule`` against the app served in process: each command, the API's refusals as
exit code 1."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.support.inproc import InProcessHerald, start_in_process


@pytest.fixture(scope="module")
def herald(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessHerald]:
    server = start_in_process(tmp_path_factory.mktemp("cli-rule") / "herald")
    try:
        yield server
    finally:
        server.stop()


def test_rule_commands(herald: InProcessHerald) -> None:
    org = herald.create_org("Acme IoT")
    api = ["--url", herald.url, "--token", herald.create_token(org, "rule:manage", "rule:read")]
    created = json.loads(
        herald.cli(
            "rule", "create", "attach failures", "--kind", "count", "--q", "type:7",
            "--count", "5", "--window", "600", "--hold-down", "3600", *api,
        ).stdout
    )  # fmt: skip
    assert created["condition"] == {"kind": "count", "count": 5, "window_seconds": 600}
    assert created["hold_down_seconds"] == 3600
    rule_id = str(created["id"])
    listing = herald.cli("rule", "list", *api).stdout
    assert "attach failures" in listing and "count 5 in 600 s" in listing
    updated = herald.cli(
        "rule", "update", rule_id, "--disable", "--kind", "absence", "--window", "60", *api
    ).stdout
    assert json.loads(updated)["enabled"] is False
    shown = json.loads(herald.cli("rule", "show", rule_id, *api).stdout)
    assert shown["condition"] == {"kind": "absence", "window_seconds": 60}
    assert shown["revision"] == 2
    assert "attach failures" not in herald.cli("rule", "alerts", *api).stdout  # none firing
    preview = herald.cli(
        "rule", "preview", "--kind", "state", "--status", "offline", "--window", "60",
        "--from", "2026-01-01T00:00:00Z", "--until", "2026-01-02T00:00:00Z", *api,
    ).stdout  # fmt: skip
    assert json.loads(preview)["fired"] == 0
    assert "deleted" in herald.cli("rule", "delete", rule_id, *api).stdout
    gone = herald.cli("rule", "show", rule_id, *api, check=False)
    assert gone.returncode == 1 and "no rule" in gone.stderr


def test_refusals_name_the_field(herald: InProcessHerald) -> None:
    org = herald.create_org("Bolt Mobility")
    api = ["--url", herald.url, "--token", herald.create_token(org, "rule:manage")]
    refused = herald.cli(
        "rule", "create", "x", "--kind", "count", "--window", "60", *api, check=False
    )
    assert refused.returncode == 1, refused.stderr
    assert "condition.count: required by a count condition" in refused.stderr
    assert "Traceback" not in refused.stderr
    nothing = herald.cli("rule", "update", "1", *api, check=False)
    assert nothing.returncode == 1 and "nothing to change" in nothing.stderr
    backwards = herald.cli(
        "rule", "preview", "--kind", "absence", "--window", "60",
        "--from", "2026-01-02T00:00:00Z", "--until", "2026-01-01T00:00:00Z", *api, check=False,
    )  # fmt: skip
    assert backwards.returncode == 1, backwards.stderr
    assert "until: must not be before from" in backwards.stderr
