"""Records on disk: each stored once, zstd-compressed with a trained dictionary.

A row names the dictionary it was written with (``events.dictionary_id``); the dictionaries
live in the store (``dictionaries``), so a new one never breaks the rows of an older one.
Dictionary 0 is none: a row written before compression (or not yet migrated) holds the record
as served. ``records-1.zdict`` ships with Herald, trained on the simulator's records
(``herald db train-dictionary --output src/herald/store/records-1.zdict`` on a store the
simulator filled); ``herald db train-dictionary`` trains one from a store's own events.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Any, ClassVar, TypeVar, cast

import orjson
import zstandard

from herald.events.types import LogEntry
from herald.query.fields import BY_NAME
from herald.record import served_record
from herald.store.common import SQLStoreBase
from herald.store.dbapi import C
from herald.store.errors import StoreError, StoreUnavailable
from herald.store.sql import KEY_COLUMNS, LEAN_CLEARED, LEAN_COLUMNS, held_device_keys
from herald.timefmt import now_ms

T = TypeVar("T")
RAW = 0
"""The dictionary id of a row holding the record uncompressed."""
SHIPPED_ID = 1
LEVEL = 3  # level 9 saves 3 % more bytes for 3x the time; 19 saves 12 % for 60x
DICTIONARY_BYTES = 16_384  # 32 KB or 64 KB dictionaries compress no better (measured)
TRAINING_SAMPLES = 5_000
RETRAIN_MIN_SAMPLES = 1_000  # a store with fewer records keeps the dictionary it has
RETRAIN_GAIN = 0.9  # a new dictionary must pack the newest records 10 % smaller at least
RETRAIN_EVERY_MS = 3_600_000  # how often the maintenance loop looks at the mix
CODEC_FRESH_S = 60.0  # how long a process writes before it looks for a newer dictionary
MIGRATION_CHUNK = 5_000
AUTO_BACKFILL_ROWS = 50_000  # backfilled at migrate time up to this many (~10 s under load)


def shipped_dictionary() -> bytes:
    """The dictionary trained on the simulator's records, as shipped (id 1 in every store)."""
    return (resources.files("herald.store") / "records-1.zdict").read_bytes()


def packed_bytes(dictionary: bytes, records: Sequence[bytes]) -> int:
    """What ``records`` take packed with ``dictionary`` (as ``Codec.pack`` packs them)."""
    compressor = zstandard.ZstdCompressor(
        level=LEVEL,
        dict_data=zstandard.ZstdCompressionDict(dictionary, dict_type=zstandard.DICT_TYPE_FULLDICT),
        write_checksum=False,
        write_dict_id=False,
    )
    return sum(len(compressor.compress(record)) for record in records)


def train(samples: Sequence[bytes]) -> bytes:
    """A dictionary trained on ``samples`` (records as served)."""
    if len(samples) < 10:
        raise StoreError(f"too few records to train a dictionary on: {len(samples)}")
    trained = zstandard.train_dictionary(DICTIONARY_BYTES, list(samples), level=LEVEL)
    return bytes(trained.as_bytes())


class Codec:
    """Packs records with the newest dictionary, unpacks with the one a row names.

    zstd's (de)compressor objects are not for concurrent use: each thread has its own.
    """

    def __init__(self, dictionaries: Mapping[int, bytes]) -> None:
        self.data = dict(dictionaries)
        self._dictionaries = {
            key: zstandard.ZstdCompressionDict(data, dict_type=zstandard.DICT_TYPE_FULLDICT)
            for key, data in dictionaries.items()
        }
        self.newest = max(self._dictionaries, default=RAW)
        self._local = threading.local()

    def knows(self, dictionary_id: int) -> bool:
        return dictionary_id == RAW or dictionary_id in self._dictionaries

    def pack(self, body: bytes) -> bytes:
        """``body`` as stored with dictionary ``newest``."""
        if self.newest == RAW:
            return body
        compressor = getattr(self._local, "compressor", None)
        if compressor is None:
            compressor = zstandard.ZstdCompressor(
                level=LEVEL,
                dict_data=self._dictionaries[self.newest],
                write_checksum=False,
                write_dict_id=False,  # the row names it
            )
            self._local.compressor = compressor
        packed: bytes = compressor.compress(body)
        return packed

    def unpack(self, dictionary_id: int, data: bytes) -> bytes:
        """The record as served from a row's ``dictionary_id`` and ``body``."""
        if dictionary_id == RAW:
            return bytes(data)
        return self.decompressor(dictionary_id)(data)

    def decompressor(self, dictionary_id: int) -> Callable[[bytes], bytes]:
        """This thread's decompression with dictionary ``dictionary_id`` (not ``RAW``)."""
        decompressors: dict[int, zstandard.ZstdDecompressor] | None = getattr(
            self._local, "decompressors", None
        )
        if decompressors is None:
            decompressors = self._local.decompressors = {}
        decompressor = decompressors.get(dictionary_id)
        if decompressor is None:
            decompressor = zstandard.ZstdDecompressor(dict_data=self._dictionaries[dictionary_id])
            decompressors[dictionary_id] = decompressor
        decompress: Callable[[bytes], bytes] = decompressor.decompress
        return decompress


class RecordMethods(SQLStoreBase[C]):
    """The store's part: its dictionaries, packing and unpacking rows, migrating old rows."""

    _codec_cache: Codec | None = None
    _codec_loaded = 0.0  # time.monotonic() of the load
    _codec_lock = threading.Lock()
    # (dictionary_id, body, record) of the row record_field decoded last, in any thread: a
    # whole tuple is replaced at once and compared in full before its record is used.
    _last_record: tuple[int, bytes, Any] | None = None

    def _codec(self) -> Codec:
        """The dictionaries, looked up again every ``CODEC_FRESH_S``: a process writes with
        one another process (the maintenance loop, ``herald db train-dictionary``) added."""
        codec = self._codec_cache
        if codec is None or time.monotonic() - self._codec_loaded > CODEC_FRESH_S:
            codec = self._load_codec()
        return codec

    def _load_codec(self) -> Codec:
        with self._codec_lock:
            rows = self.read(lambda c: c.execute("SELECT id, data FROM dictionaries").fetchall())
            codec = Codec({int(key): bytes(data) for key, data in rows})
            self._codec_cache, self._codec_loaded = codec, time.monotonic()
            return codec

    def unpack(self, dictionary_id: int, data: bytes) -> bytes:
        codec = self._codec()
        if not codec.knows(dictionary_id):  # added by another process since
            codec = self._load_codec()
        return codec.unpack(dictionary_id, data)

    def served(self, dictionary_id: int, data: bytes) -> bytes:
        """An event row's record as served (``record.served_record``): every read path of
        events (lists, one event, the log the live stream and the handlers read) takes it."""
        return served_record(self.unpack(dictionary_id, data))

    def _log_entries(self, rows: Sequence[Sequence[Any]]) -> list[LogEntry]:
        """Rows of ``LOG_COLUMNS`` as log entries, their records unpacked as served."""
        unpack = self._unpacker()
        return [
            LogEntry(r[0], r[1], r[2], served_record(unpack(r[3], r[4])), r[5], r[6]) for r in rows
        ]

    def _unpacker(self) -> Callable[[int, bytes], bytes]:
        """``unpack`` for the rows of one read, in the calling thread: the codec and each
        dictionary's decompressor looked up once."""
        codec = self._codec()
        known: dict[int, Callable[[bytes], bytes]] = {}

        def unpack(dictionary_id: int, data: bytes) -> bytes:
            decompress = known.get(dictionary_id)
            if decompress is not None:
                return decompress(data)
            if dictionary_id == RAW or not codec.knows(dictionary_id):
                return self.unpack(dictionary_id, data)
            decompress = known[dictionary_id] = codec.decompressor(dictionary_id)
            return decompress(data)

        return unpack

    def _record_field(self, dictionary_id: int, body: bytes, name: str) -> Any:
        """SQL ``record_field(dictionary_id, body, name)``: field ``name``'s value in a row's
        record, as its column would hold it (``query.fields.Field.lean``). The record asked
        about last is kept, so a row is decoded once for all of a query's lean fields."""
        last = self._last_record
        if last is None or last[0] != dictionary_id or last[1] != body:
            last = (dictionary_id, body, orjson.loads(self.unpack(dictionary_id, body)))
            self._last_record = last
        return BY_NAME[name].value(last[2])

    def _ensure_dictionary(self) -> None:
        """The shipped dictionary, stored as id 1 (once; from the migration on). Read first:
        a read-only database that has it starts."""
        stored = self.read(
            lambda c: c.execute(
                self.sql("SELECT 1 FROM dictionaries WHERE id = ?"), (SHIPPED_ID,)
            ).fetchone()
        )
        if stored is not None:
            return
        with self.transaction() as conn:
            conn.execute(
                self.sql(
                    "INSERT INTO dictionaries (id, data, created_ms) VALUES (?, ?, ?) "
                    "ON CONFLICT (id) DO NOTHING"
                ),
                (SHIPPED_ID, shipped_dictionary(), now_ms()),
            )
        self._codec_cache = None

    def train_dictionary(self, samples: int = TRAINING_SAMPLES) -> tuple[int, bytes]:
        """Train a dictionary on the newest ``samples`` events and store it: the new id
        (each Herald process writes with it within ``CODEC_FRESH_S``) and the dictionary."""
        data = train(self.sample_records(samples))
        return self._add_dictionary(data), data

    def maintain(self) -> None:
        """The maintenance loop's upkeep of records: ``retrain_dictionary`` when due (not
        while the store takes no writes: read-only, its disk full)."""
        try:
            if self._retraining_due(now_ms()):
                self.retrain_dictionary()
        except StoreUnavailable:
            return

    def retrain_dictionary(self, samples: int = TRAINING_SAMPLES) -> int | None:
        """A dictionary trained on the newest records, kept (the id it is written with from
        now on) when it packs records it was not trained on ``RETRAIN_GAIN`` smaller than
        the dictionary in use: the store's own mix, learnt, and again when it changes.
        None when the store has too few records or the dictionary in use does as well."""
        records = self.sample_records(samples)
        if len(records) < RETRAIN_MIN_SAMPLES:
            return None
        trained_on, tried_on = records[1::2], records[::2]
        candidate = train(trained_on)
        codec = self._codec()
        in_use = codec.data.get(codec.newest)
        if in_use is not None and (
            packed_bytes(candidate, tried_on) > RETRAIN_GAIN * packed_bytes(in_use, tried_on)
        ):
            return None
        return self._add_dictionary(candidate)

    def _retraining_due(self, now: int) -> bool:
        """Whether ``RETRAIN_EVERY_MS`` has passed since any process last looked (and if so,
        this one looks now: the time is written, so the others wait their turn)."""
        key = "dictionary.checked_ms"
        checked = self.meta.get(key)  # read first: most looks write nothing
        if checked is not None and now - int(checked) < RETRAIN_EVERY_MS:
            return False
        with self.transaction() as conn:
            row = conn.execute(
                self.sql(f"SELECT value FROM meta WHERE key = ?{self.LOCK_ROW}"), (key,)
            ).fetchone()
            if row is not None and now - int(row[0]) < RETRAIN_EVERY_MS:
                return False
            conn.execute(
                self.sql(
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                ),
                (key, str(now)),
            )
        return True

    def _add_dictionary(self, data: bytes) -> int:
        """Store dictionary ``data`` under the next id, which writes use from now on."""
        with self.transaction() as conn:
            row = conn.execute(
                self.sql(
                    "INSERT INTO dictionaries (id, data, created_ms) "
                    "SELECT COALESCE(MAX(id), 0) + 1, ?, ? FROM dictionaries RETURNING id"
                ),
                (data, now_ms()),
            ).fetchone()
        self._codec_cache = None
        return int(row[0])

    def sample_records(self, samples: int) -> list[bytes]:
        """The newest ``samples`` records, as served."""
        rows = self.read(
            lambda c: c.execute(
                self.sql("SELECT dictionary_id, body FROM events ORDER BY seq DESC LIMIT ?"),
                (samples,),
            ).fetchall()
        )
        return [self.unpack(key, data) for key, data in rows]

    # SQLite leaves the lean columns empty (store.sql.LEAN_COLUMNS), and the device keys'
    # columns of events naming an endpoint (KEY_COLUMNS): rows written before 0016 and 0025
    # are cleared by compact_records. PostgreSQL keeps them.
    _CLEARS_LEAN_COLUMNS: ClassVar[bool] = False

    def _uncompacted(self) -> str:
        """The condition of a row still to compact: uncompressed, or lean columns filled, or
        device keys held in its columns that ``device_keys`` has."""
        if not self._CLEARS_LEAN_COLUMNS:
            return "dictionary_id = 0"
        held = [f"COALESCE({column}, '') != ''" for column in sorted(LEAN_COLUMNS)]
        keyed = " OR ".join(f"{column} IS NOT NULL" for column in KEY_COLUMNS)
        return " OR ".join(["dictionary_id = 0", *held, f"endpoint_id IS NOT NULL AND ({keyed})"])

    def uncompacted_events(self) -> int:
        """How many events ``compact_records`` still has to rewrite."""
        sql = f"SELECT COUNT(*) FROM events WHERE {self._uncompacted()}"
        row = self.read(lambda c: c.execute(sql).fetchone())
        return int(row[0])

    def compact_records(
        self, progress: Callable[[int], Any] | None = None, chunk: int = MIGRATION_CHUNK
    ) -> int:
        """Compress every record still stored uncompressed (written before 0014) and, on
        SQLite, empty the lean columns of rows written before 0016 and move the device keys
        of rows written before 0025 to ``device_keys``; ``chunk`` rows per transaction
        (interrupted, even by kill -9, the next run goes on where this one stopped).
        ``progress`` is told how many rows each chunk did. The number of rows rewritten."""
        codec = self._codec()
        if codec.newest == RAW:
            raise StoreError("no dictionary in the store: run the migrations first")
        cleared = ""
        if self._CLEARS_LEAN_COLUMNS:
            unkeyed = (f"{c} = CASE WHEN endpoint_id IS NULL THEN {c} END" for c in KEY_COLUMNS)
            cleared = f", {LEAN_CLEARED}, {', '.join(unkeyed)}"
        select = self.sql(
            f"SELECT seq, id, ts, dictionary_id, body, organisation_id, endpoint_id, "
            f"{', '.join(KEY_COLUMNS)} FROM events "
            f"WHERE ({self._uncompacted()}) AND seq > ? ORDER BY seq LIMIT ?"
        )
        update = self.sql(
            f"UPDATE events SET body = ?, dictionary_id = ?{cleared} WHERE id = ? AND ts = ?"
        )
        done, after = 0, -(1 << 63)
        while True:
            with self.transaction() as conn:
                rows = conn.execute(select, (after, chunk)).fetchall()
                if not rows:
                    return done
                if self._CLEARS_LEAN_COLUMNS:
                    self.insert_device_keys(conn, held_device_keys(row[5:] for row in rows))
                cast(Any, conn).cursor().executemany(  # the same call on both drivers
                    update,
                    [
                        (codec.pack(bytes(body)), codec.newest, i, ts)
                        if dictionary_id == RAW
                        else (body, dictionary_id, i, ts)
                        for _, i, ts, dictionary_id, body, *_ in rows
                    ],
                )
            after = rows[-1][0]
            done += len(rows)
            if progress is not None:
                progress(len(rows))

    # -- backfilling columns added after their rows were written ----------------
    # PostgreSQL's filters read these columns; SQLite reads them from the record (lean), so
    # it has nothing to backfill. 0021 filled rat only for uncompressed rows and 0008 took
    # only emnify's organisation id, so older rows are decoded here (herald db migrate,
    # herald db backfill-fields).
    BACKFILLED: ClassVar[tuple[str, ...]] = ("rat", "provider_organisation")
    _BACKFILL_KEY = "backfill_fields"

    def _backfill_bounds(self) -> tuple[int, int] | None:
        """(after, until): the seq range still to backfill, or None when there is none. The
        upper bound is the newest row when the backfill first ran (rows written since have
        the columns); ``after`` is where the last run stopped."""
        if self._CLEARS_LEAN_COLUMNS:
            return None
        fields = ",".join(self.BACKFILLED)
        if self.meta.get(f"{self._BACKFILL_KEY}.done") == fields:
            return None
        row = self.read(lambda c: c.execute("SELECT MAX(seq) FROM events").fetchone())
        newest = -(1 << 63) if row[0] is None else int(row[0])
        until = int(self.meta.set_if_absent(f"{self._BACKFILL_KEY}.until", str(newest)))
        after = int(self.meta.get(f"{self._BACKFILL_KEY}.after") or -(1 << 63))
        return after, until

    def _backfill_condition(self) -> str:
        return " OR ".join(f"{column} IS NULL" for column in self.BACKFILLED)

    def unbackfilled_events(self, limit: int | None = None) -> int:
        """How many rows ``backfill_fields`` still has to read (counted up to ``limit``)."""
        bounds = self._backfill_bounds()
        if bounds is None:
            return 0
        inner = (
            f"SELECT 1 FROM events WHERE ({self._backfill_condition()}) AND seq > ? AND seq <= ?"
        )
        if limit is not None:
            inner += f" LIMIT {int(limit)}"
        sql = self.sql(f"SELECT COUNT(*) FROM ({inner}) AS pending")
        row = self.read(lambda c: c.execute(sql, bounds).fetchone())
        return int(row[0])

    def backfill_fields(
        self, progress: Callable[[int], Any] | None = None, chunk: int = MIGRATION_CHUNK
    ) -> int:
        """Fill ``BACKFILLED`` columns of rows written before they were kept, from each
        row's (decompressed) record: ``chunk`` rows per transaction, the position kept in
        ``meta`` with each, so a run killed at any point goes on where it stopped. ``progress``
        is told how many rows each chunk read. The number of rows changed."""
        bounds = self._backfill_bounds()
        if bounds is None:
            return 0
        after, until = bounds
        columns = ", ".join(self.BACKFILLED)
        select = self.sql(
            f"SELECT seq, id, ts, dictionary_id, body, {columns} FROM events "
            f"WHERE ({self._backfill_condition()}) AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?"
        )
        assignments = ", ".join(f"{column} = ?" for column in self.BACKFILLED)
        update = self.sql(f"UPDATE events SET {assignments} WHERE id = ? AND ts = ?")
        position = self.sql(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        )
        fields = [BY_NAME[name] for name in self.BACKFILLED]
        unpack = self._unpacker()
        changed = 0
        while True:
            with self.transaction() as conn:
                rows = conn.execute(select, (after, until, chunk)).fetchall()
                if not rows:
                    conn.execute(
                        position, (f"{self._BACKFILL_KEY}.done", ",".join(self.BACKFILLED))
                    )
                    return changed
                updates = []
                for _, i, ts, dictionary_id, body, *held in rows:
                    record = orjson.loads(unpack(dictionary_id, bytes(body)))
                    values = [field.value(record) for field in fields]
                    if values != held:
                        updates.append((*values, i, ts))
                if updates:
                    cast(Any, conn).cursor().executemany(update, updates)
                after = int(rows[-1][0])
                conn.execute(position, (f"{self._BACKFILL_KEY}.after", str(after)))
            changed += len(updates)
            if progress is not None:
                progress(len(rows))

    def backfill_if_small(self, limit: int = AUTO_BACKFILL_ROWS) -> bool:
        """Backfill at migrate time when at most ``limit`` rows are left (a store's first
        start on a new version); a larger store is left to ``herald db backfill-fields``.
        Whether nothing is left to backfill."""
        pending = self.unbackfilled_events(limit + 1)
        if pending > limit:
            return False
        self.backfill_fields()
        return True
