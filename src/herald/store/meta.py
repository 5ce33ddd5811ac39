"""Settings kept in the database (the JWT secret, the demo mark...): ``store.meta``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic

from herald.store.dbapi import C

if TYPE_CHECKING:
    from herald.store.common import SQLStoreBase


class Meta(Generic[C]):
    """Key-value settings kept in the database."""

    def __init__(self, db: SQLStoreBase[C]) -> None:
        self._db = db

    def get(self, key: str) -> str | None:
        row = self._db.read(
            lambda c: self._db.execute(c, "SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        )
        return str(row[0]) if row else None

    def set_if_absent(self, key: str, value: str) -> str:
        """Store ``value`` unless the key exists; return the stored value."""
        db = self._db
        with db.transaction() as conn:
            db.execute(
                conn,
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (key, value),
            )
            row = db.execute(conn, "SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0])
