-- The device-state projection (herald.devices): each endpoint's connectivity state, folded
-- from the log by a cursor (device_projection) written in the same transaction as the rows.
-- endpoint_key: the endpoint's id in decimal, or its name when it has none (Stacuity).
CREATE TABLE device_states (
    organisation_id INTEGER NOT NULL,
    endpoint_key    TEXT NOT NULL,
    endpoint_id     INTEGER,
    endpoint_name   TEXT,
    status          INTEGER NOT NULL,
    country         TEXT,
    operator        TEXT,
    last_event_ms   INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL,
    state           TEXT NOT NULL,
    PRIMARY KEY (organisation_id, endpoint_key)
);
CREATE INDEX device_states_org_seen ON device_states (organisation_id, last_event_ms, endpoint_key);
CREATE INDEX device_states_org_status
    ON device_states (organisation_id, status, last_event_ms, endpoint_key);

CREATE TABLE device_projection (
    name       TEXT PRIMARY KEY,
    cursor_seq INTEGER NOT NULL
);
INSERT INTO device_projection (name, cursor_seq) VALUES ('device_state', 0);
