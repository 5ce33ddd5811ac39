"""What ``herald`` costs before it does anything, and what its help says."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from herald.cli.common import _no_pydantic_plugins
from herald.cli.db import TRAINING_SAMPLES
from herald.cli.serve import DEMO_ORGANISATIONS
from herald.simulate import demo
from herald.store import records
from tests.support.herald import HERALD

HEAVY = (
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "psycopg",
    "pydantic",
    "pydantic_settings",
    "jwt",
    "zstandard",
    "herald.api",
    "herald.store",
    "herald.config",
    "herald.model",
    "herald.auth",
    "herald.delivery",
    "herald.simulate",
)
"""What no help needs: the web stack, the database drivers, the settings, the models."""


STORE_READ_NEEDS_NOT = (
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "psycopg",
    "pydantic_settings",
    "jwt",
    "asyncio",
    "herald.api",
    "herald.model",
    "herald.auth",
    "herald.delivery",
    "herald.simulate",
    "herald.threads",
    "herald.store.postgres",
)
"""What a command that only reads the SQLite store (``herald token list``) does without:
the web stack, PostgreSQL, the event models (the store takes ``herald.record``'s plain
NewEvent), pydantic-settings (the settings read the environment themselves) and asyncio."""


def _imported(*args: str) -> set[str]:
    """The modules ``herald ARGS`` imports (``python -X importtime`` lists each one)."""
    run = subprocess.run(
        [HERALD[0], "-X", "importtime", *HERALD[1:], *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {
        line.rsplit("|", 1)[1].strip()
        for line in run.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def test_help_imports_nothing_heavy() -> None:
    imported = _imported("--help")
    assert "typer" in imported  # the listing works
    heavy = sorted(m for m in imported if m.split(".")[0] in HEAVY or m.startswith(HEAVY))
    assert heavy == [], heavy


@pytest.mark.parametrize(
    "args", [("token", "--help"), ("handler", "create", "--help"), ("serve", "--help")]
)
def test_a_commands_help_imports_only_what_typer_does(args: tuple[str, ...]) -> None:
    """typer itself brings pydantic for a command's parameters: nothing else heavy."""
    imported = _imported(*args)
    heavy = sorted(
        m
        for m in imported
        if (m.split(".")[0] in HEAVY or m.startswith(HEAVY)) and not m.startswith("pydantic")
    )
    assert heavy == [], heavy


def test_token_list_imports_only_the_store_and_the_settings(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'herald.db'}"
    subprocess.run(
        [*HERALD, "db", "migrate", "--database", database],
        capture_output=True,
        timeout=60,
        check=True,
    )
    imported = _imported("token", "list", "--database", database)
    assert {"herald.store.sqlite", "herald.config", "herald.record"} <= imported  # it ran
    heavy = sorted(
        m
        for m in imported
        if m.split(".")[0] in STORE_READ_NEEDS_NOT or m.startswith(STORE_READ_NEEDS_NOT)
    )
    assert heavy == [], heavy


def _help(*args: str) -> str:
    run = subprocess.run(
        [*HERALD, *args, "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    return run.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("events", "list"),
        ("events", "tail"),
        ("handler", "create"),
        ("handler", "update"),
        ("token", "list"),
        ("org", "device-events"),
    ],
)
def test_help_texts_say_things_once_and_plainly(args: tuple[str, ...]) -> None:
    text = _help(*args)
    assert "``" not in text
    assert "(env HERALD_TOKEN)" not in text and text.count("HERALD_TOKEN") <= 1
    assert "--q " not in text
    if args == ("token", "list"):
        assert "Only this organisation's" in text
    if args == ("org", "device-events"):
        assert "on|off" in text
    if args == ("handler", "update"):
        for option in ("--format", "--filter", "--max-events", "--max-wait-ms", "--max-bytes"):
            assert option in text


def test_the_constants_the_cli_keeps_to_start_light_are_the_real_ones() -> None:
    assert TRAINING_SAMPLES == records.TRAINING_SAMPLES
    assert DEMO_ORGANISATIONS == demo.DEMO_ORGANISATIONS


@pytest.mark.parametrize("before", [None, "my_plugin"])
def test_the_settings_build_without_plugins_and_leave_the_environment_as_it_was(
    monkeypatch: pytest.MonkeyPatch, before: str | None
) -> None:
    if before is None:
        monkeypatch.delenv("PYDANTIC_DISABLE_PLUGINS", raising=False)
    else:
        monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", before)
    with _no_pydantic_plugins():
        assert os.environ["PYDANTIC_DISABLE_PLUGINS"] == "1"
    assert os.environ.get("PYDANTIC_DISABLE_PLUGINS") == before
