"""A store written by the release before device keys (``fixtures/release-0023.db.zst``, made
by ``fixtures/make_release_store.py`` with that release's code) migrated in place: killed
with SIGKILL part way, then ``herald db migrate`` again; every event reads as that release
served it (``fixtures/release-0023.ndjson.zst``) and every device-key filter selects what
the records say."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import zstandard

from herald.events.types import EventQuery
from herald.query.filter import EventFilter
from herald.store import open_store
from herald.store.records import RecordMethods
from herald.store.sql import KEY_COLUMNS
from tests.support.herald import HERALD

FIXTURES = Path(__file__).parent / "fixtures"
ORGANISATIONS = (101, 102)
# Killed by SIGKILL after the first chunk of the compaction has committed.
_KILLED_PART_WAY = """
import os, signal, sys
from herald.store import open_store
store = open_store(sys.argv[1], migrate=True)
store.maintenance.compact_records(lambda done: os.kill(os.getpid(), signal.SIGKILL), chunk=50)
"""


def _unpacked(name: str) -> bytes:
    return zstandard.ZstdDecompressor().decompress(
        (FIXTURES / name).read_bytes(), max_output_size=1 << 26
    )


def _key_filters(records: list[dict[str, Any]]) -> list[EventFilter]:
    """A filter on each device key value the records hold, per organisation."""
    filters = []
    for organisation_id in ORGANISATIONS:
        mine = [r for r in records if r["organisation"]["id"] == organisation_id]
        for name, path in (
            ("sim", ("sim", "id")),
            ("iccid", ("sim", "iccid")),
            ("imsi", ("imsi", "imsi")),
            ("user", ("user", "id")),
            ("target_id", ("target", "id")),
        ):
            values = {(r.get(path[0]) or {}).get(path[1]) for r in mine} - {None}
            for value in sorted(values, key=str)[:12]:
                filters.append(EventFilter((organisation_id,), terms={name: (value,)}))
    return filters


def test_a_store_of_the_release_before_migrates_in_place_after_a_kill(tmp_path: Path) -> None:
    path = tmp_path / "release.db"
    path.write_bytes(_unpacked("release-0023.db.zst"))
    served = _unpacked("release-0023.ndjson.zst").splitlines()
    url = f"sqlite:///{path}"

    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_PART_WAY, url], capture_output=True, timeout=120
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    store = open_store(url, migrate=False)
    try:
        assert isinstance(store, RecordMethods)
        left = store.maintenance.uncompacted_events()
        assert 0 < left == len(served) - 50  # the first chunk stayed done
    finally:
        store.close()

    result = subprocess.run(
        [*HERALD, "db", "migrate", "--database", url], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert f"compacted {left:,} stored records" in result.stdout

    store = open_store(url, migrate=False)
    try:
        assert isinstance(store, RecordMethods)
        assert store.maintenance.uncompacted_events() == 0
        assert [entry.body for entry in store.log.read(0, 100_000)] == served
        for body in served:
            event_id = orjson.loads(body)["id"]
            assert store.log.get(event_id, None) == body
        records = [orjson.loads(body) for body in served]
        filters = _key_filters(records)
        assert len(filters) > 40
        for flt in filters:
            listed = store.log.query(EventQuery(flt, per_page=1000)).items
            expected = [
                body for body, record in zip(served, records, strict=True) if flt.matches(record)
            ]
            assert sorted(listed) == sorted(expected), flt
            assert listed
        columns = ", ".join(KEY_COLUMNS)
        held = store.read(
            lambda c: c.execute(
                f"SELECT DISTINCT {columns} FROM events WHERE endpoint_id IS NOT NULL"
            ).fetchall()
        )
        assert [tuple(row) for row in held] == [(None,) * len(KEY_COLUMNS)]
    finally:
        store.close()
