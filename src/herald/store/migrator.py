"""The one migration mechanism: numbered SQL files per backend, applied once each, in order.

``migrations/<backend>/NNNN_name.sql``: both backends use the same version numbers, so
``herald db status`` reads the same on either. Each backend runs a script in its own
transaction and records it in ``schema_migrations``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """Which migrations a database has, and which it still needs."""

    applied: tuple[int, ...]
    pending: tuple[Migration, ...]

    @property
    def current(self) -> int:
        return max(self.applied, default=0)


def migrations(backend: str) -> list[Migration]:
    """Every migration shipped for ``backend`` (``sqlite`` or ``postgres``), by version."""
    folder = resources.files("herald.store") / "migrations" / backend
    found = [
        Migration(int(item.name.split("_", 1)[0]), item.name, item.read_text())
        for item in folder.iterdir()
        if item.name.endswith(".sql")
    ]
    return sorted(found, key=lambda migration: migration.version)


def status(backend: str, applied: Iterable[int]) -> SchemaStatus:
    """The schema status of a database that has ``applied`` these versions."""
    done = tuple(sorted(set(applied)))
    return SchemaStatus(done, tuple(m for m in migrations(backend) if m.version not in done))
