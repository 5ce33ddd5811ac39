-- Records stored compressed: zstd with a trained dictionary, named by each row (0: none, the
-- record as served, as every row written before this migration holds it until
-- `herald db migrate` has compressed it; see store.records). The shipped dictionary is
-- stored as id 1 right after the migrations.
CREATE TABLE dictionaries (
    id         INTEGER PRIMARY KEY,
    data       BLOB NOT NULL,
    created_ms INTEGER NOT NULL
);
ALTER TABLE events ADD COLUMN dictionary_id INTEGER NOT NULL DEFAULT 0;
