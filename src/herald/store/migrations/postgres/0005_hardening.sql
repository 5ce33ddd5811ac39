-- Retention per organisation, in days after each event's own timestamp (NULL: the server's
-- HERALD_RETENTION_DAYS); events outside the window are refused at ingest, and partitions
-- exist only for the longest window (created ahead by migrate and the purge, never by a
-- write). Handler ids are identities: never given twice, nothing to change there.
ALTER TABLE organisations ADD COLUMN retention_days INTEGER
    CHECK (retention_days BETWEEN 1 AND 366);
