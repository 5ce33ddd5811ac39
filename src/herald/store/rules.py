"""Rules and their groups' alert state (``store.rules``), shared by the SQL backends.

``rules`` holds each organisation's rules; ``rule_groups`` each rule's groups (the
condition's working state, whether it fires); ``rule_position`` the evaluator's place in the
log. The evaluator (``herald.rules.evaluator``) writes a step's groups and its new position
with its alert events in the writer's transaction (``saving``), and only if no other step
moved the position past the one it read (compare and set): a repeated or concurrent step
writes nothing twice. A rule's change or deletion resolves its open alerts the same way
(``changing``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, cast

import orjson

from herald.rules.types import Alert, Condition, Group, Rule, RuleSpec
from herald.store.dbapi import C
from herald.store.errors import LimitReached, NotFound
from herald.timefmt import now_ms

if TYPE_CHECKING:
    from herald.store.common import SQLStoreBase

POSITION = "rules"
STAMP = "rules:stamp"  # changed by every step's write: a cache of groups knows it is current
_RULE_COLUMNS = (
    "id, organisation_id, name, q, group_by, condition, hold_down_ms, enabled, revision, "
    "after_seq, created_ms, updated_ms"
)
_GROUP_COLUMNS = (
    "rule_id, group_key, organisation_id, firing, episode, fired_ms, held_until_ms, due_ms, state"
)
_UPSERT_GROUP = (
    f"INSERT INTO rule_groups ({_GROUP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (organisation_id, rule_id, group_key) DO UPDATE SET firing = excluded.firing, "
    "episode = excluded.episode, fired_ms = excluded.fired_ms, "
    "held_until_ms = excluded.held_until_ms, due_ms = excluded.due_ms, state = excluded.state"
)
Key = tuple[int, str]  # (rule id, group key)


def _rule(row: Mapping[str, Any]) -> Rule:
    spec = RuleSpec(
        name=row["name"],
        q=row["q"],
        group=row["group_by"],
        condition=Condition.from_json(orjson.loads(row["condition"])),
        hold_down_ms=int(row["hold_down_ms"]),
        enabled=bool(row["enabled"]),
    )
    return Rule(
        id=int(row["id"]),
        organisation_id=int(row["organisation_id"]),
        spec=spec,
        revision=int(row["revision"]),
        after_seq=int(row["after_seq"]),
        created_ms=int(row["created_ms"]),
        updated_ms=int(row["updated_ms"]),
    )


def _group(row: Mapping[str, Any]) -> Group:
    return Group(
        rule_id=int(row["rule_id"]),
        key=str(row["group_key"]),
        organisation_id=int(row["organisation_id"]),
        firing=bool(row["firing"]),
        episode=int(row["episode"]),
        fired_ms=None if row["fired_ms"] is None else int(row["fired_ms"]),
        held_until_ms=int(row["held_until_ms"]),
        due_ms=None if row["due_ms"] is None else int(row["due_ms"]),
        state=orjson.loads(row["state"]),
    )


def _group_values(group: Group) -> tuple[object, ...]:
    return (
        group.rule_id,
        group.key,
        group.organisation_id,
        group.firing,
        group.episode,
        group.fired_ms,
        group.held_until_ms,
        group.due_ms,
        group.state_text(),
    )


def _spec_values(spec: RuleSpec) -> tuple[object, ...]:
    return (
        spec.name,
        spec.q,
        spec.group,
        orjson.dumps(spec.condition.to_json()).decode(),
        spec.hold_down_ms,
        spec.enabled,
    )


class RuleRepository(Generic[C]):
    """Rules, their groups and the evaluator's position, on one SQL store."""

    def __init__(self, store: SQLStoreBase[C]) -> None:
        self._store = store

    # -- helpers --------------------------------------------------------------
    def _named(self, cursor: Any, columns: str) -> list[dict[str, Any]]:
        names = [name.strip() for name in columns.split(",")]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _select(self, sql: str, params: Sequence[object], columns: str) -> list[dict[str, Any]]:
        store = self._store
        return store.read(lambda c: self._named(store.execute(c, sql, params), columns))

    def _scoped(
        self, sql: str, params: list[object], organisation_ids: tuple[int, ...] | None
    ) -> tuple[str, list[object]]:
        if organisation_ids is None:
            return sql, params
        condition, values = self._store.any("organisation_id", organisation_ids)
        return f"{sql} AND {condition}", [*params, *values]

    # -- rules ----------------------------------------------------------------
    def create(
        self,
        organisation_id: int,
        spec: RuleSpec,
        max_rules: int | None = None,
        max_groups: int = 10_000,
    ) -> Rule:
        """A new rule of ``organisation_id``, seeing the events written from now on (an
        absence over every event also knows the silent devices: ``_seed``); LimitReached
        if the organisation has ``max_rules`` already."""
        store, created = self._store, now_ms()
        with store.transaction() as conn:
            if max_rules is not None:  # counted under the organisation's lock: no race
                store.execute(
                    conn,
                    f"SELECT id FROM organisations WHERE id = ?{store.LOCK_ROW}",
                    (organisation_id,),
                ).fetchone()
                count = store.execute(
                    conn, "SELECT COUNT(*) FROM rules WHERE organisation_id = ?", (organisation_id,)
                ).fetchone()
                if count is not None and int(count[0]) >= max_rules:
                    raise LimitReached(
                        f"the organisation has {int(count[0])} rules, the most it may have "
                        f"(HERALD_MAX_RULES_PER_ORGANISATION={max_rules}); delete one first"
                    )
            (rule_id,) = store.new_ids(conn, "rules", 1, created)
            store.execute(
                conn,
                f"INSERT INTO rules ({_RULE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, "
                f"({store.LAST_SEQ}), ?, ?)",
                (rule_id, organisation_id, *_spec_values(spec), created, created),
            )
            self._seed(conn, rule_id, organisation_id, spec, max_groups)
        found = self.get(rule_id)
        assert found is not None
        return found

    def _seed(self, conn: C, rule_id: int, organisation_id: int, spec: RuleSpec, most: int) -> None:
        """An absence over every event (no ``q``) per endpoint knows each endpoint with a
        device state (up to ``most``, the latest first): silent since its last event, it
        fires a window after that event, not a window after its next one (which may never
        come). With a ``q``, a device's last event tells nothing of its matching ones."""
        condition = spec.condition
        if condition.kind != "absence" or spec.group != "endpoint" or spec.q:
            return
        store = self._store
        rows = store.execute(
            conn,
            "SELECT endpoint_key, last_event_ms FROM device_states WHERE organisation_id = ? "
            "ORDER BY last_event_ms DESC LIMIT ?",
            (organisation_id, most),
        ).fetchall()
        seeded = [
            Group(
                rule_id,
                str(key),
                organisation_id,
                due_ms=int(last) + condition.window_ms,
                state={"last": [int(last), 0]},
            )
            for key, last in rows
        ]
        if seeded:
            cast(Any, conn).cursor().executemany(
                store.sql(_UPSERT_GROUP), [_group_values(g) for g in seeded]
            )

    def get(self, rule_id: int, organisation_ids: tuple[int, ...] | None = None) -> Rule | None:
        sql, params = self._scoped(
            f"SELECT {_RULE_COLUMNS} FROM rules WHERE id = ?", [rule_id], organisation_ids
        )
        rows = self._select(sql, params, _RULE_COLUMNS)
        return _rule(rows[0]) if rows else None

    def list_rules(self, organisation_ids: tuple[int, ...] | None = None) -> list[Rule]:
        sql, params = self._scoped(
            f"SELECT {_RULE_COLUMNS} FROM rules WHERE TRUE", [], organisation_ids
        )
        return [_rule(row) for row in self._select(sql + " ORDER BY id", params, _RULE_COLUMNS)]

    def active(self) -> list[Rule]:
        """Every enabled rule, of every organisation (the evaluator's)."""
        sql = f"SELECT {_RULE_COLUMNS} FROM rules WHERE enabled ORDER BY id"
        return [_rule(row) for row in self._select(sql, [], _RULE_COLUMNS)]

    def changing(
        self,
        rule: Rule,
        organisation_ids: tuple[int, ...] | None,
        spec: RuleSpec | None,
        firing: Collection[tuple[str, int]],
        max_groups: int = 10_000,
    ) -> Callable[[C], set[tuple[str, int]] | None]:
        """A change of ``rule`` (``spec``; None: its deletion), as work for the writer's
        transaction that appends the "Rule resolved" events of its groups ``firing`` (key,
        episode) with it: the rule starts afresh (a new revision, its groups forgotten, the
        events written from now on). It answers the groups that fired until now (those
        resolved), or None, writing nothing, if the rule or its firing groups are no longer
        the ones read (read again, try again). NotFound if it is not in scope."""
        store = self._store

        def change(conn: C) -> set[tuple[str, int]] | None:
            sql, params = self._scoped(
                "SELECT revision FROM rules WHERE id = ?", [rule.id], organisation_ids
            )
            row = store.execute(conn, sql + store.LOCK_ROW, params).fetchone()
            if row is None:
                raise NotFound(f"no rule {rule.id}")
            found = store.execute(
                conn,
                "SELECT group_key, episode FROM rule_groups WHERE rule_id = ? AND firing",
                (rule.id,),
            ).fetchall()
            resolved = {(str(key), int(episode)) for key, episode in found}
            if int(row[0]) != rule.revision or not resolved <= set(firing):
                return None
            store.execute(conn, "DELETE FROM rule_groups WHERE rule_id = ?", (rule.id,))
            if spec is None:
                store.execute(conn, "DELETE FROM rules WHERE id = ?", (rule.id,))
                return resolved
            store.execute(
                conn,
                "UPDATE rules SET name = ?, q = ?, group_by = ?, condition = ?, "
                "hold_down_ms = ?, enabled = ?, revision = revision + 1, "
                f"after_seq = ({store.LAST_SEQ}), updated_ms = ? WHERE id = ?",
                (*_spec_values(spec), now_ms(), rule.id),
            )
            self._seed(conn, rule.id, rule.organisation_id, spec, max_groups)
            return resolved

        return change

    # -- groups ---------------------------------------------------------------
    def groups(self, keys: Sequence[Key]) -> dict[Key, Group]:
        """The stored groups of these (rule, group key) pairs that have one."""
        by_rule: dict[int, list[str]] = {}
        for rule_id, key in keys:
            by_rule.setdefault(rule_id, []).append(key)
        store = self._store

        def read(conn: C) -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = []
            for rule_id, wanted in by_rule.items():
                for start in range(0, len(wanted), 500):
                    chunk = wanted[start : start + 500]
                    marks = ", ".join("?" * len(chunk))
                    rows += self._named(
                        store.execute(
                            conn,
                            f"SELECT {_GROUP_COLUMNS} FROM rule_groups WHERE rule_id = ? "
                            f"AND group_key IN ({marks})",
                            [rule_id, *chunk],
                        ),
                        _GROUP_COLUMNS,
                    )
            return rows

        found = [_group(row) for row in store.read(read)] if by_rule else []
        return {(group.rule_id, group.key): group for group in found}

    def due(self, now: int, limit: int = 10_000) -> list[Key]:
        """The groups whose condition time alone may have changed by ``now`` (the timer
        pass)."""
        sql = "SELECT rule_id, group_key FROM rule_groups WHERE due_ms <= ? ORDER BY due_ms LIMIT ?"
        rows = self._store.read(lambda c: self._store.execute(c, sql, (now, limit)).fetchall())
        return [(int(rule_id), str(key)) for rule_id, key in rows]

    def group_counts(self, organisation_ids: tuple[int, ...] | None = None) -> dict[int, int]:
        """How many groups each rule has."""
        sql, params = self._scoped(
            "SELECT rule_id, COUNT(*) FROM rule_groups WHERE TRUE", [], organisation_ids
        )
        rows = self._store.read(
            lambda c: self._store.execute(c, sql + " GROUP BY rule_id", params).fetchall()
        )
        return {int(rule_id): int(count) for rule_id, count in rows}

    def firing(self, rule_id: int) -> list[Group]:
        """The rule's groups that fire now."""
        sql = f"SELECT {_GROUP_COLUMNS} FROM rule_groups WHERE rule_id = ? AND firing"
        return [_group(row) for row in self._select(sql, [rule_id], _GROUP_COLUMNS)]

    def alerts(self, organisation_ids: tuple[int, ...] | None = None) -> list[Alert]:
        """The groups firing now, oldest first."""
        columns = (
            "g.rule_id, r.name, g.organisation_id, r.group_by, g.group_key, g.fired_ms, "
            "g.episode, g.state"
        )
        sql = f"SELECT {columns} FROM rule_groups g JOIN rules r ON r.id = g.rule_id WHERE g.firing"
        params: list[object] = []
        if organisation_ids is not None:
            condition, params = self._store.any("g.organisation_id", organisation_ids)
            sql += f" AND {condition}"
        rows = self._store.read(
            lambda c: self._store.execute(
                c, sql + " ORDER BY g.fired_ms, g.rule_id, g.group_key", params
            ).fetchall()
        )
        return [
            Alert(
                rule_id=int(row[0]),
                rule_name=row[1],
                organisation_id=int(row[2]),
                group_by=row[3],
                key=row[4],
                fired_ms=int(row[5] or 0),
                episode=int(row[6]),
                state=orjson.loads(row[7]),
            )
            for row in rows
        ]

    # -- the evaluator's step -------------------------------------------------
    def position(self) -> int:
        """The log position the groups include."""
        row = self._store.read(
            lambda c: self._store.execute(
                c, "SELECT cursor_seq FROM rule_position WHERE name = ?", (POSITION,)
            ).fetchone()
        )
        return int(row[0]) if row else 0

    def stamped_position(self) -> tuple[int, int]:
        """The position and the stamp of the step that wrote the groups last (0: none has)."""
        rows = self._store.read(
            lambda c: self._store.execute(
                c,
                "SELECT name, cursor_seq FROM rule_position WHERE name IN (?, ?)",
                (POSITION, STAMP),
            ).fetchall()
        )
        found = {name: int(value) for name, value in rows}
        return found.get(POSITION, 0), found.get(STAMP, 0)

    def _restamp(self, conn: C, stamp: tuple[int, int] | None) -> bool:
        """Move the stamp (first: its row lock orders concurrent steps); False if it is no
        longer the one read."""
        store = self._store
        if stamp is None:
            store.execute(
                conn,
                "INSERT INTO rule_position (name, cursor_seq) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET cursor_seq = excluded.cursor_seq",
                (STAMP, secrets.randbits(62) + 1),
            )
            return True
        read, new = stamp
        moved = store.execute(
            conn,
            "UPDATE rule_position SET cursor_seq = ? WHERE name = ? AND cursor_seq = ?",
            (new, STAMP, read),
        ).rowcount
        if moved == 0 and read == 0:  # no step has written one yet
            moved = store.execute(
                conn,
                "INSERT INTO rule_position (name, cursor_seq) VALUES (?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                (STAMP, new),
            ).rowcount
        return bool(moved == 1)

    def saving(
        self,
        after_seq: int,
        cursor_seq: int,
        revisions: Mapping[int, int],
        groups: Sequence[Group] = (),
        dropped: Sequence[Key] = (),
        stamp: tuple[int, int] | None = None,
    ) -> Callable[[C], set[int] | None]:
        """An evaluator's step, as work for the writer's transaction that appends its alert
        events with it: move the position from ``after_seq`` (or from before it: what lies
        between concerns no rule) to ``cursor_seq``, write ``groups`` and delete ``dropped``
        of the rules still at the ``revisions`` the step read (of a rule changed or deleted
        meanwhile: nothing). It answers those rules (their alerts stand), or None, writing
        nothing, if another step moved the position past ``after_seq``, or the stamp from
        the one read. ``stamp`` (read, new): the stamp moves from the one the step read
        (``stamped_position``) to a new one; without it, to a random one: every write
        changes it."""
        store = self._store

        def save(conn: C) -> set[int] | None:
            if not self._restamp(conn, stamp):
                return None
            moved = store.execute(
                conn,
                "UPDATE rule_position SET cursor_seq = ? WHERE name = ? AND cursor_seq <= ?",
                (cursor_seq, POSITION, after_seq),
            ).rowcount
            if moved != 1:
                return None
            touched = sorted(set(revisions))
            current: set[int] = set()
            for start in range(0, len(touched), 500):
                chunk = touched[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                rows = store.execute(
                    conn,
                    f"SELECT id, revision FROM rules WHERE id IN ({marks}){store.LOCK_ROW}",
                    chunk,
                ).fetchall()
                current |= {int(i) for i, rev in rows if revisions.get(int(i)) == int(rev)}
            kept = [g for g in groups if g.rule_id in current]
            if kept:  # both drivers' cursors batch this (psycopg in one pipeline)
                cast(Any, conn).cursor().executemany(
                    store.sql(_UPSERT_GROUP), [_group_values(g) for g in kept]
                )
            gone = [key for key in dropped if key[0] in current]
            if gone:
                cast(Any, conn).cursor().executemany(
                    store.sql("DELETE FROM rule_groups WHERE rule_id = ? AND group_key = ?"), gone
                )
            return current

        return save
