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
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Any, TypeVar, cast

import zstandard

from herald.store.common import C, SQLStoreBase
from herald.store.errors import StoreError
from herald.timefmt import now_ms

T = TypeVar("T")
RAW = 0
"""The dictionary id of a row holding the record uncompressed."""
SHIPPED_ID = 1
LEVEL = 3  # level 9 saves 3 % more bytes for 3x the time; 19 saves 12 % for 60x
DICTIONARY_BYTES = 16_384  # 32 KB or 64 KB dictionaries compress no better (measured)
TRAINING_SAMPLES = 5_000
MIGRATION_CHUNK = 5_000


def shipped_dictionary() -> bytes:
    """The dictionary trained on the simulator's records, as shipped (id 1 in every store)."""
    return (resources.files("herald.store") / "records-1.zdict").read_bytes()


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
    _codec_lock = threading.Lock()

    def _codec(self) -> Codec:
        codec = self._codec_cache
        if codec is None:
            codec = self._load_codec()
        return codec

    def _load_codec(self) -> Codec:
        with self._codec_lock:
            rows = self._read(lambda c: c.execute("SELECT id, data FROM dictionaries").fetchall())
            codec = Codec({int(key): bytes(data) for key, data in rows})
            self._codec_cache = codec
            return codec

    def _unpack(self, dictionary_id: int, data: bytes) -> bytes:
        codec = self._codec()
        if not codec.knows(dictionary_id):  # added by another process since
            codec = self._load_codec()
        return codec.unpack(dictionary_id, data)

    def _unpacker(self) -> Callable[[int, bytes], bytes]:
        """``_unpack`` for the rows of one read, in the calling thread: the codec and each
        dictionary's decompressor looked up once."""
        codec = self._codec()
        known: dict[int, Callable[[bytes], bytes]] = {}

        def unpack(dictionary_id: int, data: bytes) -> bytes:
            decompress = known.get(dictionary_id)
            if decompress is not None:
                return decompress(data)
            if dictionary_id == RAW or not codec.knows(dictionary_id):
                return self._unpack(dictionary_id, data)
            decompress = known[dictionary_id] = codec.decompressor(dictionary_id)
            return decompress(data)

        return unpack

    def _ensure_dictionary(self) -> None:
        """The shipped dictionary, stored as id 1 (once; from the migration on). Read first:
        a read-only database that has it starts."""
        stored = self._read(
            lambda c: c.execute(
                self._sql("SELECT 1 FROM dictionaries WHERE id = ?"), (SHIPPED_ID,)
            ).fetchone()
        )
        if stored is not None:
            return
        with self._transaction() as conn:
            conn.execute(
                self._sql(
                    "INSERT INTO dictionaries (id, data, created_ms) VALUES (?, ?, ?) "
                    "ON CONFLICT (id) DO NOTHING"
                ),
                (SHIPPED_ID, shipped_dictionary(), now_ms()),
            )
        self._codec_cache = None

    def train_dictionary(self, samples: int = TRAINING_SAMPLES) -> tuple[int, bytes]:
        """Train a dictionary on the newest ``samples`` events and store it: the new id
        (written with from the next start of each Herald process) and the dictionary."""
        data = train(self.sample_records(samples))
        with self._transaction() as conn:
            row = conn.execute(
                self._sql(
                    "INSERT INTO dictionaries (id, data, created_ms) "
                    "SELECT COALESCE(MAX(id), 0) + 1, ?, ? FROM dictionaries RETURNING id"
                ),
                (data, now_ms()),
            ).fetchone()
        self._codec_cache = None
        return int(row[0]), data

    def sample_records(self, samples: int) -> list[bytes]:
        """The newest ``samples`` records, as served."""
        rows = self._read(
            lambda c: c.execute(
                self._sql("SELECT dictionary_id, body FROM events ORDER BY seq DESC LIMIT ?"),
                (samples,),
            ).fetchall()
        )
        return [self._unpack(key, data) for key, data in rows]

    def uncompressed_events(self) -> int:
        """How many events still hold their record uncompressed (written before 0014)."""
        row = self._read(
            lambda c: c.execute("SELECT COUNT(*) FROM events WHERE dictionary_id = 0").fetchone()
        )
        return int(row[0])

    def compress_records(
        self, progress: Callable[[int], Any] | None = None, chunk: int = MIGRATION_CHUNK
    ) -> int:
        """Compress every record still stored uncompressed, ``chunk`` rows per transaction
        (interrupted, the next run goes on where this one stopped); ``progress`` is told how
        many rows each chunk did. The number of rows compressed."""
        codec = self._codec()
        if codec.newest == RAW:
            raise StoreError("no dictionary in the store: run the migrations first")
        done, after = 0, -(1 << 63)
        while True:
            with self._transaction() as conn:
                rows = conn.execute(
                    self._sql(
                        "SELECT seq, id, ts, body FROM events WHERE dictionary_id = 0 AND seq > ? "
                        "ORDER BY seq LIMIT ?"
                    ),
                    (after, chunk),
                ).fetchall()
                if not rows:
                    return done
                cast(Any, conn).cursor().executemany(  # the same call on both drivers
                    self._sql(
                        "UPDATE events SET body = ?, dictionary_id = ? WHERE id = ? AND ts = ?"
                    ),
                    [(codec.pack(bytes(body)), codec.newest, i, ts) for _, i, ts, body in rows],
                )
            after = rows[-1][0]
            done += len(rows)
            if progress is not None:
                progress(len(rows))
