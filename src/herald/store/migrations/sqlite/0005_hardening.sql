-- Retention per organisation, in days after each event's own timestamp (NULL: the server's
-- HERALD_RETENTION_DAYS); events outside the window are refused at ingest.
ALTER TABLE organisations ADD COLUMN retention_days INTEGER
    CHECK (retention_days BETWEEN 1 AND 366);

-- Handler ids are never given again (AUTOINCREMENT): an in-flight delivery of a deleted
-- handler must not find another tenant's new handler under its id. SQLite cannot add
-- AUTOINCREMENT in place, so the table is rebuilt (the migrator turns foreign keys off
-- around a migration, so dropping the old table does not cascade to the attempt log).
CREATE TABLE handlers_new (
    id                       INTEGER PRIMARY KEY AUTOINCREMENT,
    organisation_id          INTEGER NOT NULL REFERENCES organisations (id),
    name                     TEXT NOT NULL,
    type                     TEXT NOT NULL,
    url                      TEXT NOT NULL,
    format                   TEXT NOT NULL,
    filter                   TEXT NOT NULL,
    batch_max_events         INTEGER NOT NULL,
    batch_max_wait_ms        INTEGER NOT NULL,
    retention_ms             INTEGER NOT NULL,
    enabled                  INTEGER NOT NULL,
    disabled_reason          TEXT,
    secret                   TEXT NOT NULL,
    previous_secret          TEXT,
    previous_secret_until_ms INTEGER,
    cursor_seq               INTEGER NOT NULL,
    failures                 INTEGER NOT NULL DEFAULT 0,
    failing_since_ms         INTEGER,
    next_attempt_ms          INTEGER,
    last_success_ms          INTEGER,
    last_error               TEXT,
    owner                    TEXT,
    lease_until_ms           INTEGER,
    created_ms               INTEGER NOT NULL,
    updated_ms               INTEGER NOT NULL
);
INSERT INTO handlers_new SELECT * FROM handlers;
DROP TABLE handlers;
ALTER TABLE handlers_new RENAME TO handlers;
CREATE INDEX handlers_org ON handlers (organisation_id, id);

-- Node ids (0-1023, the node part of event ids) leased by running processes, as on
-- PostgreSQL: two processes writing to one file never share a node id.
CREATE TABLE nodes (
    node_id      INTEGER PRIMARY KEY CHECK (node_id BETWEEN 0 AND 1023),
    holder       TEXT NOT NULL,
    heartbeat    INTEGER NOT NULL  -- Unix milliseconds
);
