"""Handler filters kept in the shape before the q form are converted by the migration."""

from __future__ import annotations

import orjson

from herald.handlers.types import HandlerSpec
from herald.store import Store


def test_migrate_converts_old_handler_filters(store: Store) -> None:
    organisation = store.organisations.create("Acme IoT")
    kept = store.handlers.create(organisation.id, HandlerSpec("new", "http://x/"), "whsec_x")
    old = store.handlers.create(organisation.id, HandlerSpec("old", "http://x/"), "whsec_y")
    legacy = {"event_types": [5], "severities": [1, 2], "alert_only": True, "tags": ["fleet_a"]}
    with store.transaction() as conn:  # type: ignore[attr-defined]  # as 0.1 wrote it
        store.execute(  # type: ignore[attr-defined]
            conn,
            "UPDATE handlers SET filter = ? WHERE id = ?",
            (orjson.dumps(legacy).decode(), old.id),
        )
    as_q = "type:5,severity:1|2,alert:true,tags:fleet_a"
    assert store.handlers.upgrade_filters() == 1  # as on open
    assert store.handlers.upgrade_filters() == 0
    converted = store.handlers.get(old.id)
    assert converted is not None and converted.spec.filter == as_q
    with store.transaction() as conn:  # type: ignore[attr-defined]
        rows = store.execute(conn, "SELECT id, filter FROM handlers ORDER BY id").fetchall()  # type: ignore[attr-defined]
    # two handlers made in one millisecond take random slots of it: their order is either
    assert [(row[0], orjson.loads(row[1])) for row in rows] == sorted(
        [(kept.id, ""), (old.id, as_q)]
    )
