-- Organisations, application tokens and the event log.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE organisations (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);

CREATE TABLE tokens (
    id              INTEGER PRIMARY KEY,
    organisation_id INTEGER REFERENCES organisations (id),
    name            TEXT NOT NULL,
    token_hash      TEXT NOT NULL UNIQUE,
    prefix          TEXT NOT NULL,
    permissions     TEXT NOT NULL,
    internal        INTEGER NOT NULL,
    created_ms      INTEGER NOT NULL,
    revoked_ms      INTEGER
);

-- seq is the order of commit: delivery cursors and live streams follow it.
-- id is the public, time-ordered event id; body is the record as the API serves it.
CREATE TABLE events (
    seq             INTEGER PRIMARY KEY,
    id              INTEGER NOT NULL UNIQUE,
    organisation_id INTEGER NOT NULL,
    ts              INTEGER NOT NULL,
    received        INTEGER NOT NULL,
    type_id         INTEGER NOT NULL,
    severity        INTEGER NOT NULL,
    source          INTEGER NOT NULL,
    alert           INTEGER NOT NULL,
    criticality     INTEGER NOT NULL,
    endpoint_id     INTEGER,
    endpoint_name   TEXT,
    sim_id          INTEGER,
    iccid           TEXT,
    imsi            TEXT,
    imei            TEXT,
    ip_address      TEXT,
    user_id         INTEGER,
    username        TEXT,
    tags            TEXT,
    target_type     TEXT,
    target_id       TEXT,
    moniker         TEXT,
    provider        TEXT NOT NULL,
    external_id     TEXT,
    description     TEXT NOT NULL,
    body            BLOB NOT NULL
);

CREATE INDEX events_org_ts ON events (organisation_id, ts, id);
CREATE INDEX events_org_endpoint_ts ON events (organisation_id, endpoint_id, ts, id)
    WHERE endpoint_id IS NOT NULL;
CREATE INDEX events_org_type_ts ON events (organisation_id, type_id, ts, id);
CREATE INDEX events_org_user_ts ON events (organisation_id, user_id, ts, id)
    WHERE user_id IS NOT NULL;
CREATE INDEX events_org_sim_ts ON events (organisation_id, sim_id, ts, id)
    WHERE sim_id IS NOT NULL;
CREATE INDEX events_org_iccid ON events (organisation_id, iccid) WHERE iccid IS NOT NULL;
CREATE INDEX events_org_imsi ON events (organisation_id, imsi) WHERE imsi IS NOT NULL;
CREATE INDEX events_org_target ON events (organisation_id, target_type, target_id, ts);
CREATE INDEX events_ts ON events (ts);
CREATE UNIQUE INDEX events_external_id ON events (organisation_id, provider, external_id)
    WHERE external_id IS NOT NULL;
