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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, cast

import orjson

from herald.query import syntax
from herald.query.filter import EventFilter
from herald.rules.types import FIRED, RESOLVED, Alert, Condition, Group, Rule, RuleSpec
from herald.store.dbapi import C
from herald.store.errors import LimitReached, NotFound
from herald.store.sql import where_clause
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
SEED_DAYS = 7  # a filtered absence knows the endpoints with a matching event this recent
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Refused:
    """The groups a rule refused at its limit: how many (each once), since when."""

    groups: int
    since_ms: int


@dataclass(frozen=True, slots=True)
class Matched:
    """The endpoints with a matching event, read before a filtered absence's transaction."""

    upto_seq: int  # read up to this log position
    since_ms: int  # from this time
    filter: EventFilter
    last: dict[str, int]  # endpoint key -> its last matching event's time


def _seeded(spec: RuleSpec) -> bool:
    """Whether the rule knows endpoints from before its start: an absence per endpoint."""
    return spec.condition.kind == "absence" and spec.group == "endpoint"


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
        time_limit: float | None = None,
    ) -> Rule:
        """A new rule of ``organisation_id``, seeing the events written from now on (an
        absence per endpoint also knows the endpoints known before: ``_seed``, its read of
        the log stopped past ``time_limit`` seconds: QueryTimeout); LimitReached if the
        organisation has ``max_rules`` already."""
        store, created = self._store, now_ms()
        found = self._matched(organisation_id, spec, max_groups, time_limit)
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
            self._seed(conn, rule_id, organisation_id, spec, max_groups, found)
        made = self.get(rule_id)
        assert made is not None
        return made

    def _matched(
        self, organisation_id: int, spec: RuleSpec, most: int, time_limit: float | None
    ) -> Matched | None:
        """Before a filtered absence per endpoint is made or changed: the endpoints with a
        matching event in the last ``SEED_DAYS`` (or its window, if longer), each with its
        last one's time (None: no such rule). Read outside the rule's transaction, which
        adds what was written meanwhile (``_seed``), within ``time_limit`` seconds (a
        tenant's query: QueryTimeout past it)."""
        if not _seeded(spec) or not spec.q:
            return None
        upto = self._store.last_seq()
        since = now_ms() - max(SEED_DAYS * DAY_MS, spec.condition.window_ms)
        flt = syntax.parse_filter(syntax.q_terms(spec.q, "q"), scope=None)
        last = self._store.read(
            lambda c: self._last_matching(c, organisation_id, flt, since, 0, upto, most),
            time_limit,
        )
        return Matched(upto, since, flt, last)

    def _last_matching(
        self,
        conn: C,
        organisation_id: int,
        flt: EventFilter,
        since_ms: int,
        after_seq: int,
        upto_seq: int | None,
        most: int,
    ) -> dict[str, int]:
        """The endpoints (by id) with a matching event from ``since_ms`` committed in
        (``after_seq``, ``upto_seq``] (None: up to the last), the latest ``most``, each with
        its last one's time; never alert events."""
        store = self._store
        mark = store.DIALECT.mark
        scoped = flt.replace(organisation_ids=(organisation_id,), from_ms=since_ms)
        where = where_clause(scoped, store.DIALECT)  # never empty: it names the organisation
        upto = store.LAST_SEQ if upto_seq is None else mark
        sql = (
            f"SELECT endpoint_id, MAX(ts) FROM events{where.sql} AND endpoint_id IS NOT NULL "
            f"AND type_id NOT IN ({FIRED}, {RESOLVED}) AND seq > {mark} AND seq <= ({upto}) "
            f"GROUP BY endpoint_id ORDER BY MAX(ts) DESC LIMIT {mark}"
        )
        bounds = [after_seq] if upto_seq is None else [after_seq, upto_seq]
        rows = conn.execute(sql, [*where.params, *bounds, most]).fetchall()
        return {str(int(endpoint)): int(last) for endpoint, last in rows}

    def _seed(
        self,
        conn: C,
        rule_id: int,
        organisation_id: int,
        spec: RuleSpec,
        most: int,
        matched: Matched | None,
    ) -> None:
        """An absence per endpoint knows, from its start, the endpoints known before it (up
        to ``most``, the latest first): silent since their last event, they fire a window
        after it, not a window after their next one (which may never come). Without a
        ``q``: every endpoint with a device state, since its last event; with one: every
        endpoint with a matching event in the last ``SEED_DAYS`` (``matched``, and what was
        written since it was read), since the last of them."""
        condition = spec.condition
        if not _seeded(spec):
            return
        store = self._store
        if matched is None:
            rows = store.execute(
                conn,
                "SELECT endpoint_key, last_event_ms FROM device_states WHERE organisation_id = ? "
                "ORDER BY last_event_ms DESC LIMIT ?",
                (organisation_id, most),
            ).fetchall()
            last = {str(key): int(at) for key, at in rows}
        else:
            last = dict(matched.last)
            later = self._last_matching(
                conn,
                organisation_id,
                matched.filter,
                matched.since_ms,
                matched.upto_seq,
                None,
                most,
            )
            for key, at in later.items():
                last[key] = max(at, last.get(key, at))
            last = dict(sorted(last.items(), key=lambda item: -item[1])[:most])
        seeded = [
            Group(
                rule_id,
                key,
                organisation_id,
                due_ms=at + condition.window_ms,
                state={"last": [at, 0]},
            )
            for key, at in last.items()
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
        time_limit: float | None = None,
    ) -> Callable[[C], set[tuple[str, int]] | None]:
        """A change of ``rule`` (``spec``; None: its deletion), as work for the writer's
        transaction that appends the "Rule resolved" events of its groups ``firing`` (key,
        episode) with it: the rule starts afresh (a new revision, its groups forgotten, the
        events written from now on). It answers the groups that fired until now (those
        resolved), or None, writing nothing, if the rule or its firing groups are no longer
        the ones read (read again, try again). NotFound if it is not in scope; QueryTimeout
        if seeding it read the log longer than ``time_limit`` seconds."""
        store = self._store
        matched = (
            None
            if spec is None
            else self._matched(rule.organisation_id, spec, max_groups, time_limit)
        )

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
            store.execute(conn, "DELETE FROM rule_refused WHERE rule_id = ?", (rule.id,))
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
            self._seed(conn, rule.id, rule.organisation_id, spec, max_groups, matched)
            return resolved

        return change

    def amend(self, rule: Rule, organisation_ids: tuple[int, ...] | None, spec: RuleSpec) -> bool:
        """Give ``rule`` the name and hold-down of ``spec``, a change that keeps its revision,
        groups and alerts (``RuleSpec.restarted_by`` is false); False, writing nothing, if
        it is no longer at the revision read. NotFound if it is not in scope."""
        store = self._store
        sql, params = self._scoped(
            "UPDATE rules SET name = ?, hold_down_ms = ?, updated_ms = ? "
            "WHERE id = ? AND revision = ?",
            [spec.name, spec.hold_down_ms, now_ms(), rule.id, rule.revision],
            organisation_ids,
        )
        with store.transaction() as conn:
            if store.execute(conn, sql, params).rowcount == 1:
                return True
        if self.get(rule.id, organisation_ids) is None:
            raise NotFound(f"no rule {rule.id}")
        return False

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

    def refused(self, organisation_ids: tuple[int, ...] | None = None) -> dict[int, Refused]:
        """How many groups each rule that refused any has refused (at its limit), and since
        when."""
        sql, params = self._scoped(
            "SELECT rule_id, COUNT(*), MIN(refused_ms) FROM rule_refused WHERE TRUE",
            [],
            organisation_ids,
        )
        rows = self._store.read(
            lambda c: self._store.execute(c, sql + " GROUP BY rule_id", params).fetchall()
        )
        return {int(rule_id): Refused(int(n), int(since)) for rule_id, n, since in rows}

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

    def has_usage(self, organisation_id: int, first_day: int) -> bool:
        """Whether the organisation has any usage records from ``first_day`` on."""
        row = self._store.read(
            lambda c: self._store.execute(
                c,
                "SELECT 1 FROM usage_daily WHERE organisation_id = ? AND day >= ? LIMIT 1",
                (organisation_id, first_day),
            ).fetchone()
        )
        return row is not None

    def usage_days(
        self, organisation_id: int, endpoint_ids: Sequence[int], first_day: int, last_day: int
    ) -> dict[int, dict[int, int]]:
        """The endpoints' data usage records of the days ``first_day``..``last_day``:
        endpoint id -> {UTC day: their total}, of the days that have any (the days whose
        data usage the usage routes take from the records)."""
        store = self._store

        def read(conn: C) -> list[Any]:
            rows: list[Any] = []
            for start in range(0, len(endpoint_ids), 500):
                chunk = list(endpoint_ids[start : start + 500])
                marks = ", ".join("?" * len(chunk))
                rows += store.execute(
                    conn,
                    "SELECT endpoint_id, day, data_total FROM usage_daily "
                    f"WHERE organisation_id = ? AND endpoint_id IN ({marks}) AND day >= ? "
                    "AND day <= ? AND data_records > 0",
                    [organisation_id, *chunk, first_day, last_day],
                ).fetchall()
            return rows

        found: dict[int, dict[int, int]] = {}
        for endpoint_id, day, total in store.read(read) if endpoint_ids else []:
            found.setdefault(int(endpoint_id), {})[int(day)] = int(total)
        return found

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
        refused: Mapping[int, Collection[str]] | None = None,
        max_refused: int = 10_000,
        counted: list[int] | None = None,
    ) -> Callable[[C], set[int] | None]:
        """An evaluator's step, as work for the writer's transaction that appends its alert
        events with it: move the position from ``after_seq`` (or from before it: what lies
        between concerns no rule) to ``cursor_seq``, write ``groups`` and delete ``dropped``
        of the rules still at the ``revisions`` the step read (of a rule changed or deleted
        meanwhile: nothing). It answers those rules (their alerts stand), or None, writing
        nothing, if another step moved the position past ``after_seq``, or the stamp from
        the one read. ``stamp`` (read, new): the stamp moves from the one the step read
        (``stamped_position``) to a new one; without it, to a random one: every write
        changes it. ``refused``: the keys of the groups each rule refused at its limit,
        kept once each, up to ``max_refused`` per rule; ``counted`` gets how many of them
        were new."""
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
            new = self._refuse(conn, refused or {}, current, max_refused, now_ms())
            if counted is not None:
                counted[:] = [new]
            return current

        return save

    def _refuse(
        self,
        conn: C,
        refused: Mapping[int, Collection[str]],
        current: set[int],
        most: int,
        now: int,
    ) -> int:
        """Keep the keys of the groups the ``current`` rules refused, once each and up to
        ``most`` per rule; how many were new."""
        store = self._store
        new = 0
        for rule_id, keys in refused.items():
            if rule_id not in current or not keys:
                continue
            row = store.execute(
                conn,
                "SELECT organisation_id, (SELECT COUNT(*) FROM rule_refused WHERE rule_id = ?) "
                "FROM rules WHERE id = ?",
                (rule_id, rule_id),
            ).fetchone()
            if row is None or int(row[1]) >= most:
                continue
            organisation_id, before = int(row[0]), int(row[1])
            cast(Any, conn).cursor().executemany(
                store.sql(
                    "INSERT INTO rule_refused (organisation_id, rule_id, group_key, refused_ms) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (organisation_id, rule_id, group_key) "
                    "DO NOTHING"
                ),
                [(organisation_id, rule_id, key, now) for key in sorted(keys)[: most - before]],
            )
            after = store.execute(
                conn, "SELECT COUNT(*) FROM rule_refused WHERE rule_id = ?", (rule_id,)
            ).fetchone()
            new += int(after[0]) - before
        return new
