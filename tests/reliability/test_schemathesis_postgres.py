"""Schemathesis on PostgreSQL, with a tenant's token (and, in the soak, with the internal
admin token: its operations are the tenant's, and SQLite's run covers them every time)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.conftest import SOAK
from tests.reliability.figures import Figures
from tests.reliability.schemathesis_run import find_nothing, fuzzed_server


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("kind", ["tenant", "internal"] if SOAK else ["tenant"])
def test_schemathesis_all_phases_find_nothing(
    database_url: str, kind: str, tmp_path: Path, figures: Figures
) -> None:
    with fuzzed_server(database_url, tmp_path, kind) as (server, token):
        find_nothing(server, token, tmp_path, figures)
