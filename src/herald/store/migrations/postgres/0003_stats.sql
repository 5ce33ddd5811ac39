-- Columns for the analytics API (/event/stats), extracted from the record's detail on write
-- (as in the SQLite migration of the same number); on the parent, so on every partition.
ALTER TABLE events ADD COLUMN country TEXT;
ALTER TABLE events ADD COLUMN operator TEXT;
ALTER TABLE events ADD COLUMN volume_mb DOUBLE PRECISION;

CREATE INDEX events_org_ts_stats ON events (organisation_id, ts, severity, type_id, source);
CREATE INDEX events_org_volume ON events (organisation_id, ts, endpoint_id, volume_mb)
    WHERE volume_mb IS NOT NULL;
