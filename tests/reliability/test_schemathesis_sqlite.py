"""Schemathesis on SQLite, with a tenant's token and with the internal admin token."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.figures import Figures
from tests.reliability.schemathesis_run import find_nothing, fuzzed_server


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("kind", ["tenant", "internal"])
def test_schemathesis_all_phases_find_nothing(
    database_url: str, kind: str, tmp_path: Path, figures: Figures
) -> None:
    with fuzzed_server(database_url, tmp_path, kind) as (server, token):
        find_nothing(server, token, tmp_path, figures)
