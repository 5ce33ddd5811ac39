"""Organisations (tenants) and their application tokens: ``store.organisations``."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Generic

import orjson

from herald.organisations.types import Organisation, Token
from herald.store.dbapi import C
from herald.store.errors import NotFound
from herald.timefmt import now_ms

if TYPE_CHECKING:
    from herald.store.common import SQLStoreBase

ORGANISATION_FIELDS = (
    "id",
    "name",
    "created_ms",
    "retention_days",
    "device_events",
    "events_per_second",
    "event_burst",
    "bytes_per_day",
)
ORGANISATION_COLUMNS = ", ".join(ORGANISATION_FIELDS)
TOKEN_FIELDS = (
    "id",
    "organisation_id",
    "name",
    "prefix",
    "permissions",
    "internal",
    "created_ms",
    "revoked_ms",
)
TOKEN_COLUMNS = ", ".join(TOKEN_FIELDS)


class Organisations(Generic[C]):
    """Organisations, their settings (retention, device events, event budget) and tokens."""

    def __init__(self, db: SQLStoreBase[C]) -> None:
        self._db = db

    # -- organisations --------------------------------------------------------
    def create(
        self, name: str, organisation_id: int | None = None, retention_days: int | None = None
    ) -> Organisation:
        db = self._db
        created = now_ms()
        with db.transaction() as conn:
            if organisation_id is None:
                row = db.execute(
                    conn,
                    "INSERT INTO organisations (name, created_ms, retention_days) "
                    "VALUES (?, ?, ?) RETURNING id",
                    (name, created, retention_days),
                ).fetchone()
            else:
                row = db.execute(
                    conn,
                    "INSERT INTO organisations (id, name, created_ms, retention_days) "
                    "VALUES (?, ?, ?, ?) RETURNING id",
                    (organisation_id, name, created, retention_days),
                ).fetchone()
                db.after_chosen_organisation_id(conn)
        if retention_days is not None:
            db.retention_changed()
        return Organisation(row[0], name, created, retention_days)

    def get(self, organisation_id: int) -> Organisation | None:
        row = self._db.read(
            lambda c: self._db.execute(
                c,
                f"SELECT {ORGANISATION_COLUMNS} FROM organisations WHERE id = ?",
                (organisation_id,),
            ).fetchone()
        )
        return _organisation(row) if row else None

    def all(self) -> builtins.list[Organisation]:
        """Every organisation, by id."""
        rows = self._db.read(
            lambda c: self._db.execute(
                c, f"SELECT {ORGANISATION_COLUMNS} FROM organisations ORDER BY id"
            ).fetchall()
        )
        return [_organisation(row) for row in rows]

    def set_retention(self, organisation_id: int, retention_days: int | None) -> Organisation:
        """Change an organisation's retention (None: the default); raises NotFound."""
        changed = self._set(organisation_id, "retention_days = ?", (retention_days,))
        self._db.retention_changed()
        return changed

    def set_device_events(self, organisation_id: int, enabled: bool) -> Organisation:
        """Whether the organisation's endpoints' status changes are written as events;
        raises NotFound."""
        return self._set(organisation_id, "device_events = ?", (enabled,))

    def set_event_budget(
        self,
        organisation_id: int,
        events_per_second: float | None,
        event_burst: int | None,
        bytes_per_day: int | None,
    ) -> Organisation:
        """Set an organisation's event budget (each None: the server's default); raises
        NotFound."""
        return self._set(
            organisation_id,
            "events_per_second = ?, event_burst = ?, bytes_per_day = ?",
            (events_per_second, event_burst, bytes_per_day),
        )

    def _set(self, organisation_id: int, columns: str, values: tuple[object, ...]) -> Organisation:
        row = self._db.write(
            lambda c: self._db.execute(
                c,
                f"UPDATE organisations SET {columns} WHERE id = ? RETURNING {ORGANISATION_COLUMNS}",
                (*values, organisation_id),
            ).fetchone()
        )
        if row is None:
            raise NotFound(f"no organisation {organisation_id}")
        return _organisation(row)

    # -- tokens ---------------------------------------------------------------
    def create_token(
        self,
        *,
        token_hash: str,
        prefix: str,
        name: str,
        organisation_id: int | None,
        permissions: Sequence[str],
        internal: bool,
    ) -> Token:
        db = self._db
        created = now_ms()
        with db.transaction() as conn:
            (token_id,) = db.new_ids(conn, "tokens", 1, created)
            db.execute(
                conn,
                "INSERT INTO tokens (id, organisation_id, name, token_hash, prefix, "
                "permissions, internal, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    token_id,
                    organisation_id,
                    name,
                    token_hash,
                    prefix,
                    orjson.dumps(list(permissions)).decode(),
                    internal,
                    created,
                ),
            )
        return Token(
            token_id, organisation_id, name, prefix, tuple(permissions), internal, created, None
        )

    def find_token(self, token_hash: str) -> Token | None:
        """The token whose secret hashes to ``token_hash``."""
        return self._one_token("token_hash", token_hash)

    def get_token(self, token_id: int) -> Token | None:
        return self._one_token("id", token_id)

    def _one_token(self, column: str, value: object) -> Token | None:
        row = self._db.read(
            lambda c: self._db.execute(
                c, f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE {column} = ?", (value,)
            ).fetchone()
        )
        return _token(row) if row else None

    def tokens(self, organisation_id: int | None = None) -> builtins.list[Token]:
        """The organisation's tokens (None: every token), by id."""
        sql = f"SELECT {TOKEN_COLUMNS} FROM tokens"
        params: tuple[object, ...] = ()
        if organisation_id is not None:
            sql += " WHERE organisation_id = ?"
            params = (organisation_id,)
        rows = self._db.read(lambda c: self._db.execute(c, sql + " ORDER BY id", params).fetchall())
        return [_token(row) for row in rows]

    def revoke_token(self, token_id: int) -> Token:
        """Mark a token revoked (idempotent); raises NotFound."""
        row = self._db.write(
            lambda c: self._db.execute(
                c,
                "UPDATE tokens SET revoked_ms = COALESCE(revoked_ms, ?) WHERE id = ? "
                f"RETURNING {TOKEN_COLUMNS}",
                (now_ms(), token_id),
            ).fetchone()
        )
        if row is None:
            raise NotFound(f"no token {token_id}")
        return _token(row)

    def count_tokens(self) -> int:
        row = self._db.read(lambda c: self._db.execute(c, "SELECT COUNT(*) FROM tokens").fetchone())
        return int(row[0]) if row else 0


def _organisation(row: Sequence[Any]) -> Organisation:
    """The organisation in a row of ``ORGANISATION_COLUMNS``, read by column name."""
    named = dict(zip(ORGANISATION_FIELDS, row, strict=True))
    return Organisation(**{**named, "device_events": bool(named["device_events"])})


def _token(row: Sequence[Any]) -> Token:
    """The token in a row of ``TOKEN_COLUMNS``, read by column name."""
    named = dict(zip(TOKEN_FIELDS, row, strict=True))
    return Token(
        **{
            **named,
            "permissions": tuple(orjson.loads(named["permissions"])),
            "internal": bool(named["internal"]),
        }
    )
