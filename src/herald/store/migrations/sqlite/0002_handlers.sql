-- Event handlers: each keeps a cursor over the event log (the last seq delivered or
-- skipped), its retry state, and a lease so that one worker at a time serves it.
CREATE TABLE handlers (
    id                       INTEGER PRIMARY KEY,
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
CREATE INDEX handlers_org ON handlers (organisation_id, id);

-- The attempt log: one row per request sent (or refused before sending).
CREATE TABLE deliveries (
    id         INTEGER PRIMARY KEY,
    handler_id INTEGER NOT NULL REFERENCES handlers (id) ON DELETE CASCADE,
    at_ms      INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    event_ids  TEXT NOT NULL,
    status     INTEGER,
    outcome    TEXT NOT NULL,
    error      TEXT,
    latency_ms INTEGER NOT NULL
);
CREATE INDEX deliveries_handler ON deliveries (handler_id, id);

-- Replays: a range of the log delivered again, with a cursor of its own.
CREATE TABLE replays (
    id         INTEGER PRIMARY KEY,
    handler_id INTEGER NOT NULL REFERENCES handlers (id) ON DELETE CASCADE,
    from_ms    INTEGER NOT NULL,
    until_ms   INTEGER NOT NULL,
    cursor_seq INTEGER NOT NULL,
    end_seq    INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    done_ms    INTEGER
);
CREATE INDEX replays_pending ON replays (handler_id, id) WHERE done_ms IS NULL;
