-- A handler's batches bounded by bytes too: the most record bytes one batch carries (each
-- record as an NDJSON line; NULL: bounded by batch_max_events alone).
ALTER TABLE handlers ADD COLUMN batch_max_bytes INTEGER;
