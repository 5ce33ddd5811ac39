-- Usage (herald.devices.usage): provider usage records, once per (organisation, provider,
-- record id), and their sums per endpoint and UTC day (days since 1970), written in the same
-- transaction as the records they add. Volumes: data in millionths of a MB, SMS in messages.
CREATE TABLE usage_records (
    id              INTEGER NOT NULL,
    organisation_id INTEGER NOT NULL REFERENCES organisations (id),
    provider        TEXT NOT NULL,
    record_id       TEXT NOT NULL,
    endpoint_id     INTEGER NOT NULL,
    traffic_type    INTEGER NOT NULL,
    start_ms        INTEGER,
    end_ms          INTEGER NOT NULL,
    day             INTEGER NOT NULL,
    rx              INTEGER NOT NULL,
    tx              INTEGER NOT NULL,
    total           INTEGER NOT NULL,
    received_ms     INTEGER NOT NULL,
    record          BLOB NOT NULL,
    PRIMARY KEY (organisation_id, provider, record_id)
);
CREATE INDEX usage_records_endpoint ON usage_records (organisation_id, endpoint_id, end_ms);
CREATE INDEX usage_records_day ON usage_records (organisation_id, day);

CREATE TABLE usage_daily (
    organisation_id INTEGER NOT NULL,
    endpoint_id     INTEGER NOT NULL,
    day             INTEGER NOT NULL,
    data_records    INTEGER NOT NULL,
    data_rx         INTEGER NOT NULL,
    data_tx         INTEGER NOT NULL,
    data_total      INTEGER NOT NULL,
    sms_mo          INTEGER NOT NULL,
    sms_mt          INTEGER NOT NULL,
    sms_total       INTEGER NOT NULL,
    PRIMARY KEY (organisation_id, endpoint_id, day)
);
CREATE INDEX usage_daily_day ON usage_daily (organisation_id, day);
