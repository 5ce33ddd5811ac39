-- Columns for the analytics API (/event/stats), extracted from the record's detail on write:
-- country and operator of the network (Update location, PDP context events),
-- volume_mb: the data volume (MB) a Delete PDP Context reports in detail.volume.total.
ALTER TABLE events ADD COLUMN country TEXT;
ALTER TABLE events ADD COLUMN operator TEXT;
ALTER TABLE events ADD COLUMN volume_mb REAL;

-- Covering the dashboard's counts over time by severity and by type.
CREATE INDEX events_org_ts_stats ON events (organisation_id, ts, severity, type_id, source);
-- Top endpoints by data volume: only the events that carry a volume.
CREATE INDEX events_org_volume ON events (organisation_id, ts, endpoint_id, volume_mb)
    WHERE volume_mb IS NOT NULL;
