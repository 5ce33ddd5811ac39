"""A bad ``HERALD_*`` value stops a command before it does anything: one line per bad
setting naming the variable, what is wrong and what it takes; exit 2, no traceback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from herald.config import SettingsError, load_settings
from tests.support.herald import HERALD


def _run(tmp_path: Path, args: list[str], bad: dict[str, str]) -> subprocess.CompletedProcess[str]:
    database = tmp_path / "herald.db"
    return subprocess.run(
        [*HERALD, *args, "--database", f"sqlite:///{database}"],
        cwd=tmp_path,
        env={**os.environ, "HERALD_DEMO": "false", **bad},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("args", [["serve"], ["worker"], ["db", "migrate"]])
def test_a_bad_value_is_one_line_naming_the_variable(tmp_path: Path, args: list[str]) -> None:
    run = _run(tmp_path, args, {"HERALD_TRUSTED_PROXIES": "nonsense"})
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.splitlines() == [
        "error: HERALD_TRUSTED_PROXIES='nonsense': 'nonsense' is not an IP address or network, "
        "e.g. 10.0.0.5,10.1.0.0/16"
    ]
    assert run.stdout == ""
    assert not (tmp_path / "herald.db").exists()  # stopped before anything was done


def test_each_bad_value_has_its_line_with_what_is_expected(tmp_path: Path) -> None:
    bad = {
        "HERALD_QUERIES_PER_ORGANISATION": "-1",
        "HERALD_PORT": "eighty",
        "HERALD_METRICS_PUBLIC": "maybe",
    }
    run = _run(tmp_path, ["serve"], bad)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr and "pydantic" not in run.stderr
    assert sorted(run.stderr.splitlines()) == [
        "error: HERALD_METRICS_PUBLIC='maybe': should be a valid boolean, unable to interpret "
        "input; expected true or false (default false)",
        "error: HERALD_PORT='eighty': should be a valid integer, unable to parse string as an "
        "integer; expected a whole number >= 1, <= 65535 (default 8080)",
        "error: HERALD_QUERIES_PER_ORGANISATION='-1': should be greater than or equal to 1; "
        "expected a whole number >= 1 (default 4)",
    ]


def test_an_optional_setting_says_it_is_unset_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_NODE_ID", "1024")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert raised.value.problems == [
        "HERALD_NODE_ID='1024': should be less than or equal to 1023; expected a whole number "
        ">= 0, <= 1023 (default unset)"
    ]
