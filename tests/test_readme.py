"""Every shell example of README.md works as written when pasted, in order, into one shell.

The ```sh blocks run against a real ``herald serve`` on a fresh SQLite file in a temporary
directory (its ``herald.db``, ``herald.db.admin-token``), through ``curl``, ``herald`` and
``.venv/bin/herald`` as a reader has them; only ``localhost:8080`` is pointed at the test
server's port (``HERALD_URL`` for the CLI). Each block must run to its end (``set -e``,
``pipefail``) with every HTTP answer below 400. A block that cannot run here says why in a
comment just before it: ``<!-- readme-test: skip (the reason) -->``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.delivery.receiver import receiving
from tests.support.server import HeraldServer, start_server

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SKIP = re.compile(r"<!-- readme-test: skip \((?P<reason>[^)]+(?:\([^)]*\)[^)]*)*)\) -->")
CURL = shutil.which("curl")

SHIM = """#!/usr/bin/env bash
# {name} as the README uses it, pointed at the test server and receiver
args=()
for arg in "$@"; do
{rewrites}
  args+=("$arg")
done
exec {command} "${{args[@]}}"
"""
STATUS = "'%{stderr}@@status %{http_code} %{method} %{url_effective}\\n'"
"""What the curl shim writes to stderr after each answer, for the test to check."""


@dataclass(frozen=True)
class Block:
    line: int  # of its opening fence
    text: str
    skip: str | None  # why it does not run here


def blocks(readme: str) -> list[Block]:
    """The README's ```sh blocks, with the skip reason of the comment before each."""
    found: list[Block] = []
    lines = readme.splitlines()
    index = 0
    while index < len(lines):
        if lines[index].strip() == "```sh":
            start = index
            previous = next((lines[i] for i in range(start - 1, -1, -1) if lines[i].strip()), "")
            index += 1
            body: list[str] = []
            while index < len(lines) and lines[index].strip() != "```":
                body.append(lines[index])
                index += 1
            reason = SKIP.search(previous)
            found.append(Block(start + 1, "\n".join(body), reason["reason"] if reason else None))
        index += 1
    return found


BLOCKS = blocks(README.read_text(encoding="utf-8"))


@dataclass
class Run:
    """What the whole script did: each block's statuses and output, which blocks ended."""

    statuses: dict[int, list[str]]
    printed: dict[int, str]
    ended: set[int]
    output: str


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """The runnable blocks, in order, in one bash against one fresh server."""
    if CURL is None:
        pytest.fail("curl is not installed: the README's examples need it")
    workdir = tmp_path_factory.mktemp("readme")
    server = start_server(
        workdir,
        env={"HERALD_ALLOW_PRIVATE_TARGETS": "true"},  # the handlers' example.com is loopback
        database_url=f"sqlite:///{workdir / 'herald.db'}",
    )
    try:
        with receiving() as receiver:
            yield _run_script(server, receiver.url, workdir)
    finally:
        server.stop()


def _shim(path: Path, command: str, rewrites: dict[str, str]) -> None:
    escaped = {old.replace("/", "\\/"): new for old, new in rewrites.items()}
    lines = [f'  arg="${{arg//{old}/{new}}}"' for old, new in escaped.items()]
    path.write_text(SHIM.format(name=path.name, rewrites="\n".join(lines), command=command))
    path.chmod(0o755)


def _run_script(server: HeraldServer, receiver: str, workdir: Path) -> Run:
    shims = workdir / "bin"
    shims.mkdir()
    (workdir / ".venv" / "bin").mkdir(parents=True)
    rewrites = {
        "localhost:8080": f"127.0.0.1:{server.port}",
        "127.0.0.1:8080": f"127.0.0.1:{server.port}",
        "https://example.com/herald": receiver,
    }
    herald = str(Path(sys.executable).with_name("herald"))
    _shim(shims / "curl", f"{CURL} --max-time 60 -w {STATUS}", rewrites)
    _shim(shims / "herald", herald, rewrites)
    _shim(workdir / ".venv" / "bin" / "herald", herald, rewrites)
    script = ["set -eo pipefail"]
    for block in BLOCKS:
        if block.skip is None:
            marker = f"echo '@@block {block.line}'"
            script += [marker, f"{marker} >&2", block.text]
            script.append(f"echo '@@end {block.line}' >&2")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HERALD_")},
        "PATH": f"{shims}{os.pathsep}{os.environ['PATH']}",
        "HERALD_URL": server.url,
    }
    result = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    statuses: dict[int, list[str]] = {}
    ended: set[int] = set()
    current = 0
    for line in result.stderr.splitlines():
        if line.startswith("@@block "):
            current = int(line.split()[1])
            statuses[current] = []
        elif line.startswith("@@end "):
            ended.add(int(line.split()[1]))
        elif line.startswith("@@status "):
            statuses.setdefault(current, []).append(line.removeprefix("@@status "))
    output = f"exit {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    printed = {
        int(part.split("\n", 1)[0]): part.partition("\n")[2]
        for part in result.stdout.split("@@block ")[1:]
    }
    return Run(statuses, printed, ended, output)


def test_the_readme_has_runnable_examples() -> None:
    runnable = [block for block in BLOCKS if block.skip is None]
    assert len(runnable) >= 10
    assert all(block.skip.strip() for block in BLOCKS if block.skip is not None)


@pytest.mark.parametrize(
    "block",
    [
        pytest.param(block, id=f"line {block.line}", marks=pytest.mark.skip(reason=block.skip))
        if block.skip
        else pytest.param(block, id=f"line {block.line}")
        for block in BLOCKS
    ],
)
def test_readme_example_works_as_written(run: Run, block: Block) -> None:
    assert block.line in run.ended, f"the block at README.md:{block.line} failed:\n{run.output}"
    failed = [s for s in run.statuses.get(block.line, []) if s[:1] not in ("1", "2", "3")]
    assert not failed, f"README.md:{block.line} got error answers: {failed}\n{run.output}"
    quarantined = re.findall(r'"quarantined": ?[1-9]', run.printed.get(block.line, ""))
    assert not quarantined, f"README.md:{block.line}: a record was quarantined:\n{run.output}"
