-- The ingest quarantine bounded (issue 28): a record larger than HERALD_QUARANTINE_RECORD_BYTES
-- keeps only its first bytes, original_bytes its size as sent (NULL: kept whole); each
-- organisation's records and their bytes (record and reasons) counted in quarantine_usage,
-- so that its quota is checked without a scan.
ALTER TABLE rejected_records ADD COLUMN original_bytes INTEGER;
CREATE TABLE quarantine_usage (
    organisation_id INTEGER PRIMARY KEY,
    records         INTEGER NOT NULL,
    bytes           INTEGER NOT NULL
);
INSERT INTO quarantine_usage (organisation_id, records, bytes)
SELECT organisation_id, COUNT(*), SUM(length(record) + length(errors))
FROM rejected_records GROUP BY organisation_id;
