"""The example records of the shared reference documents, parsed for the adapter tests."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHARED_REFERENCE

_JSON_BLOCK = re.compile(r"```json\n(.*?)```", re.S)
_ONECE_HEADING = re.compile(r"^(\d\d_[A-Za-z_]+)$", re.M)


def _read(name: str) -> str:
    path: Path = SHARED_REFERENCE / name
    if not path.exists():
        pytest.skip(f"shared reference {name} is not beside the repository ({path})")
    return path.read_text()


def emnify_examples() -> list[dict[str, Any]]:
    """Every ```json example of emnify-event-types.md (one holds a raw newline in a string)."""
    blocks = _JSON_BLOCK.findall(_read("emnify-event-types.md"))
    return [json.loads(block, strict=False) for block in blocks]


def onece_examples() -> list[tuple[str, dict[str, Any]]]:
    """(heading, record) for each example of 1nce-event-records.txt, e.g. 01_Update_Location."""
    text = _read("1nce-event-records.txt")
    decoder = json.JSONDecoder(strict=False)
    examples = []
    for match in _ONECE_HEADING.finditer(text):
        start = text.index("{", match.end())
        record, _ = decoder.raw_decode(text, start)
        examples.append((match.group(1), record))
    return examples
