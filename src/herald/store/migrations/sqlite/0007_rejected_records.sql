-- The ingest quarantine: provider records Herald could not use, per organisation, with why
-- and the record's bytes, until a retry stores them or the retention period ends. A record is
-- kept once per (organisation, provider, digest of its bytes): a re-sent batch adds nothing.
CREATE TABLE rejected_records (
    id              INTEGER PRIMARY KEY,
    organisation_id INTEGER NOT NULL REFERENCES organisations (id),
    provider        TEXT NOT NULL,
    digest          TEXT NOT NULL,
    received_ms     INTEGER NOT NULL,
    attempted_ms    INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 1,
    errors          TEXT NOT NULL,
    record          BLOB NOT NULL,
    UNIQUE (organisation_id, provider, digest)
);
CREATE INDEX rejected_records_org ON rejected_records (organisation_id, id);
CREATE INDEX rejected_records_received ON rejected_records (received_ms);
