"""NUL characters in documents: PostgreSQL cannot store them (SQLite can), so both backends
refuse them (the API at its edge, provider ingest record by record)."""

from __future__ import annotations

from typing import Any

NUL_REASON = "must not contain the NUL character (U+0000)"


def nul_field(document: Any, path: str = "body") -> str | None:
    """The dotted path of the first string (value or key) in ``document`` holding NUL."""
    stack: list[tuple[str, Any]] = [(path, document)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return where
        elif isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in key:
                    return where
                stack.append((key if where == "body" else f"{where}.{key}", item))
        elif isinstance(value, list):
            stack.extend((f"{where}[{index}]", item) for index, item in enumerate(value))
    return None
