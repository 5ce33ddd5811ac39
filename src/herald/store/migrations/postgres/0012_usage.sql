-- Usage (herald.devices.usage): provider usage records, once per (organisation, provider,
-- record id), and their sums per endpoint and UTC day (days since 1970), written in the same
-- transaction as the records they add. Volumes: data in millionths of a MB, SMS in messages.
CREATE TABLE usage_records (
    id              BIGINT NOT NULL,
    organisation_id BIGINT NOT NULL REFERENCES organisations (id),
    provider        TEXT NOT NULL,
    record_id       TEXT NOT NULL,
    endpoint_id     BIGINT NOT NULL,
    traffic_type    SMALLINT NOT NULL,
    start_ms        BIGINT,
    end_ms          BIGINT NOT NULL,
    day             INTEGER NOT NULL,
    rx              BIGINT NOT NULL,
    tx              BIGINT NOT NULL,
    total           BIGINT NOT NULL,
    received_ms     BIGINT NOT NULL,
    record          BYTEA NOT NULL,
    PRIMARY KEY (organisation_id, provider, record_id)
);
CREATE INDEX usage_records_endpoint ON usage_records (organisation_id, endpoint_id, end_ms);
CREATE INDEX usage_records_day ON usage_records (organisation_id, day);

CREATE TABLE usage_daily (
    organisation_id BIGINT NOT NULL,
    endpoint_id     BIGINT NOT NULL,
    day             INTEGER NOT NULL,
    data_records    INTEGER NOT NULL,
    data_rx         BIGINT NOT NULL,
    data_tx         BIGINT NOT NULL,
    data_total      BIGINT NOT NULL,
    sms_mo          BIGINT NOT NULL,
    sms_mt          BIGINT NOT NULL,
    sms_total       BIGINT NOT NULL,
    PRIMARY KEY (organisation_id, endpoint_id, day)
);
CREATE INDEX usage_daily_day ON usage_daily (organisation_id, day);
