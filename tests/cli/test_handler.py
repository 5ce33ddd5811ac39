"""``herald handler`` against a running server: exit codes, every PATCH setting, server text
printed as it is."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.delivery.receiver import always, receiving, start_delivery_in_process, tenant
from tests.support.herald import Herald


@pytest.fixture(scope="module")
def herald(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Herald]:
    server = start_delivery_in_process(tmp_path_factory.mktemp("cli-handler") / "herald")
    try:
        yield server
    finally:
        server.stop()


def _api(server: Herald, token: str) -> list[str]:
    return ["--url", server.url, "--token", token]


def test_server_text_is_never_read_as_markup(herald: Herald) -> None:
    _, token = tenant(herald)
    api = _api(herald, token)
    refused = herald.cli("handler", "create", "x", "ftp://example.com/[/?#]", *api, check=False)
    assert refused.returncode == 1, refused.stderr
    assert "Traceback" not in refused.stderr and "MarkupError" not in refused.stderr
    assert "scheme 'ftp' is not one Herald delivers to" in refused.stderr
    closing_tag = herald.cli("handler", "create", "x", "[/?#]://example.com", *api, check=False)
    assert closing_tag.returncode == 1 and "scheme '[/?#]'" in closing_tag.stderr
    assert "Traceback" not in closing_tag.stderr

    named = "[bold red]loud[/] [/?#]"
    herald.cli("handler", "create", named, "http://127.0.0.1:9/[x]", *api)
    listing = herald.cli("handler", "list", *api).stdout
    assert named in listing and "http://127.0.0.1:9/[x]" in listing


def test_a_loopback_refusal_says_how_to_allow_private_targets(tmp_path: Path) -> None:
    strict = start_delivery_in_process(tmp_path / "strict", HERALD_ALLOW_PRIVATE_TARGETS="false")
    try:
        _, token = tenant(strict)
        refused = strict.cli(
            "handler", "create", "x", "http://127.0.0.1:9/hook", *_api(strict, token), check=False
        )
    finally:
        strict.stop()
    assert refused.returncode == 1
    assert "HERALD_ALLOW_PRIVATE_TARGETS=true" in refused.stderr


def test_handler_test_fails_unless_delivered(herald: Herald) -> None:
    _, token = tenant(herald)
    api = _api(herald, token)
    with receiving(always(503)) as busy, receiving(always(204)) as fine:
        created = json.loads(herald.cli("handler", "create", "h", busy.url, *api).stdout)
        failed = herald.cli("handler", "test", str(created["id"]), *api, check=False)
        assert failed.returncode == 1, failed.stdout
        assert json.loads(failed.stdout)["outcome"] == "retry"
        assert "the test event was not delivered (retry: HTTP 503)" in failed.stderr
        herald.cli("handler", "update", str(created["id"]), "--target", fine.url, *api)
        passed = herald.cli("handler", "test", str(created["id"]), *api)
        assert json.loads(passed.stdout)["outcome"] == "delivered"


def test_handler_update_changes_what_patch_can(herald: Herald) -> None:
    _, token = tenant(herald)
    api = _api(herald, token)
    create = ["handler", "create", "h", "http://127.0.0.1:9/hook", "--max-wait-ms", "500"]
    handler = json.loads(herald.cli(*create, *api).stdout)
    assert handler["batch"] == {"max_events": 1, "max_wait_ms": 500, "max_bytes": None}
    update = ["handler", "update", str(handler["id"]), "--format", "ndjson"]
    update += ["--filter", "type:3|5", "--max-events", "50", "--max-bytes", "65536"]
    changed = json.loads(herald.cli(*update, *api).stdout)
    assert changed["format"] == "ndjson" and changed["filter"] == "type:3|5"
    # the batch settings not given stay as they were
    assert changed["batch"] == {"max_events": 50, "max_wait_ms": 500, "max_bytes": 65536}
    cleared = json.loads(
        herald.cli("handler", "update", str(handler["id"]), "--filter", "", *api).stdout
    )
    assert cleared["filter"] == "" and cleared["format"] == "ndjson"
    nothing = herald.cli("handler", "update", str(handler["id"]), *api, check=False)
    assert nothing.returncode == 1 and "--format, --filter, --max-events" in nothing.stderr
    bad_format = herald.cli("handler", "update", "1", "--format", "xml", *api, check=False)
    assert bad_format.returncode == 2 and "'xml' is not one of" in bad_format.stderr


def test_a_replay_from_a_word_says_what_is_expected(herald: Herald) -> None:
    _, token = tenant(herald)
    api = _api(herald, token)
    handler = json.loads(herald.cli("handler", "create", "h", "http://127.0.0.1:9/", *api).stdout)
    replay = ["handler", "replay", str(handler["id"]), "--from", "yesterday"]
    refused = herald.cli(*replay, *api, check=False)
    assert refused.returncode == 1
    assert "from: must be an ISO 8601 time such as 2026-11-01T00:00:00Z" in refused.stderr


def test_a_webhook_with_headers_timeout_credentials_and_the_stacuity_format(
    herald: Herald, tmp_path: Path
) -> None:
    _, token = tenant(herald)
    api = _api(herald, token)
    secret_file = tmp_path / "receiver-token"
    secret_file.write_text("receiver-bearer")
    with receiving() as receiver:
        create = ["handler", "create", "h", receiver.url, "--format", "stacuity"]
        create += ["--header", "X-Tenant=acme", "--header", "X-Trace=a=b"]
        create += ["--set", "timeout_seconds=5", "--credential", f"token=@{secret_file}"]
        create += ["--max-events", "10000"]
        handler = json.loads(herald.cli(*create, *api).stdout)
        assert handler["settings"] == {
            "headers": {"X-Tenant": "acme", "X-Trace": "a=b"},
            "timeout_seconds": 5.0,
        }
        assert handler["credentials_set"] is True and handler["batch"]["max_events"] == 10_000
        herald.cli("handler", "test", str(handler["id"]), *api)
        [request] = receiver.delivered()
        assert request.headers["authorization"] == "Bearer receiver-bearer"
        assert request.headers["x-trace"] == "a=b" and "eventId" in request.json()[0]
    cleared = herald.cli("handler", "update", str(handler["id"]), "--header", "", *api)
    assert json.loads(cleared.stdout)["settings"] == {"timeout_seconds": 5.0}
    bad = ["handler", "update", str(handler["id"]), "--header", "Host=elsewhere", *api]
    refused = herald.cli(*bad, check=False)
    assert refused.returncode == 1 and "settings.headers.Host" in refused.stderr
    slow = ["handler", "update", str(handler["id"]), "--set", "timeout_seconds=soon", *api]
    assert "takes a number of seconds" in herald.cli(*slow, check=False).stderr
