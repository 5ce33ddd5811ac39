"""Schemathesis 4 over the OpenAPI document, as a user runs it (its CLI), against a server of
the test's backend: every phase (examples, coverage, fuzzing, stateful over the document's
links) and every check but one, with a token holding every permission. No 5xx, every answer
as documented, bad data refused. Its test files run one backend each, so that the two runs
(minutes each) go to two test workers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.reliability.conftest import ALL, FUZZ_EXAMPLES, SOAK, make_tenant
from tests.reliability.figures import Figures
from tests.support.server import HeraldServer, start_server

EVERY_PERMISSION = (*ALL, "ingest:emnify", "ingest:1nce", "ingest:stacuity")
SKIPPED_PATHS = ("/api/v1/event/stream", "/api/v1/event_handler/{handler_id}/test")
"""The live stream never ends; /test sends a request to the handler's (fuzzed) URL."""
EXCLUDED_CHECKS = "positive_data_acceptance"
"""Not every schema-valid request can succeed: a filter, a cursor or an id must also mean
something (an existing handler, a custom type code >= 10000, a URL that resolves), which
JSON Schema cannot say. Every other check runs."""
SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))


@contextmanager
def fuzzed_server(
    database_url: str, tmp_path: Path, kind: str
) -> Iterator[tuple[HeraldServer, str]]:
    """A server on ``database_url`` that delivers nothing (fuzzed URLs get no request), and
    a token holding every permission: a tenant's (``kind`` "tenant"), or the internal admin
    token ("internal")."""
    server = start_server(
        tmp_path / "herald",
        env={
            "HERALD_DELIVERY_ENABLED": "false",
            "HERALD_ALLOW_PRIVATE_TARGETS": "true",  # so fuzzed handlers can be created
            "HERALD_RATE_LIMIT_PER_SECOND": "0",
        },
        database_url=database_url,
    )
    try:
        tenant = make_tenant(server, "Fuzz Co", *EVERY_PERMISSION)
        yield server, tenant.token if kind == "tenant" else server.admin_token
    finally:
        server.stop()


def find_nothing(server: HeraldServer, token: str, tmp_path: Path, figures: Figures) -> None:
    """Run schemathesis against ``server`` with ``token``; fail on anything it finds. The
    internal admin token's run has a smaller budget outside the soak (its operations are
    the tenant's, with more reach)."""
    budget = FUZZ_EXAMPLES * (3 if SOAK else 1) // 3
    if token == server.admin_token and not SOAK:
        budget //= 3
    report = tmp_path / "schemathesis.json"
    command = [
        SCHEMATHESIS, "run", f"{server.url}/api/openapi.json",
        "--header", f"Authorization: Bearer {token}",
        "--phases", "examples,coverage,fuzzing,stateful",
        "--checks", "all", "--exclude-checks", EXCLUDED_CHECKS,
        "--max-examples", str(max(3, budget)),
        "--seed", os.environ.get("HERALD_FUZZ_SEED", "20261130"),
        "--workers", "1", "--request-timeout", "30", "--no-color",
        "--report", "json", "--report-json-path", str(report),
        *(arg for path in SKIPPED_PATHS for arg in ("--exclude-path", path)),
    ]  # fmt: skip
    result = subprocess.run(
        command,
        cwd=tmp_path,  # where it keeps its state (.schemathesis/)
        capture_output=True,
        text=True,
        timeout=3600 if SOAK else 900,
        check=False,
    )
    (tmp_path / "schemathesis.out").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout[:8000] + "\n…\n" + result.stdout[-1500:]
    assert "Traceback" not in server.log()
    figures.add("fuzz.schemathesis_runs")
    figures.add("fuzz.schemathesis_inputs", _summary(r"(\d+) generated", result.stdout))
    figures.add("fuzz.schemathesis_operations", _summary(r"Tested: (\d+)", result.stdout))


def _summary(pattern: str, output: str) -> int:
    """A number of schemathesis' summary (``N generated``, ``Tested: N``)."""
    found = re.search(pattern, output)
    return int(found.group(1)) if found else 0
