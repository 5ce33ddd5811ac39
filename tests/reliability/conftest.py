"""Fixtures of the reliability suite: the run's figures and tenants."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.reliability.figures import Figures, run_kind
from tests.support.herald import Herald


@pytest.fixture(scope="session")
def figures() -> Iterator[Figures]:
    """This process's counters, written to the run's ignored directory at the session's end
    (``tests/reliability/figures.py``: merged there with the other workers')."""
    run = Figures(run_kind())
    yield run
    run.write()


@dataclass
class Tenant:
    organisation_id: int
    token: str


SOAK = run_kind() == "soak"
"""Under ``make soak``: longer runs, more kills, larger budgets."""
FUZZ_EXAMPLES = int(os.environ.get("HERALD_FUZZ_EXAMPLES", "30"))
"""The fuzzers' budget (hypothesis examples; schemathesis' per operation is a third)."""
ALL = ("event:read", "event:create", "handler:read", "handler:manage", "rule:read", "rule:manage")


def make_tenant(server: Herald, name: str, *permissions: str) -> Tenant:
    organisation = server.create_org(name)
    return Tenant(organisation, server.create_token(organisation, *(permissions or ALL)))
