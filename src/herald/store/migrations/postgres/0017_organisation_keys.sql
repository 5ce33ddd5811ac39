-- Every primary and unique key of the tenants' tables names the organisation, so that a
-- PostgreSQL-based distributed engine (Citus or similar) can shard them by organisation_id
-- (SCALING.md). organisations, tokens (internal ones belong to none), nodes, dictionaries,
-- device_projection and meta are the platform's own: reference tables there.
-- The attempt log and the replays carry their handler's organisation.
ALTER TABLE deliveries ADD COLUMN organisation_id BIGINT;
UPDATE deliveries d SET organisation_id = h.organisation_id FROM handlers h
WHERE h.id = d.handler_id;
ALTER TABLE deliveries ALTER COLUMN organisation_id SET NOT NULL;

ALTER TABLE replays ADD COLUMN organisation_id BIGINT;
UPDATE replays r SET organisation_id = h.organisation_id FROM handlers h
WHERE h.id = r.handler_id;
ALTER TABLE replays ALTER COLUMN organisation_id SET NOT NULL;

ALTER TABLE deliveries DROP CONSTRAINT deliveries_handler_id_fkey;
ALTER TABLE replays DROP CONSTRAINT replays_handler_id_fkey;

ALTER TABLE handlers DROP CONSTRAINT handlers_pkey;
ALTER TABLE handlers ADD PRIMARY KEY (organisation_id, id);
DROP INDEX handlers_org;  -- the primary key's prefix now
CREATE INDEX handlers_id ON handlers (id);  -- the worker finds a handler by id alone

ALTER TABLE deliveries DROP CONSTRAINT deliveries_pkey;
ALTER TABLE deliveries ADD PRIMARY KEY (organisation_id, id);
ALTER TABLE deliveries ADD FOREIGN KEY (organisation_id, handler_id)
    REFERENCES handlers (organisation_id, id) ON DELETE CASCADE;

ALTER TABLE replays DROP CONSTRAINT replays_pkey;
ALTER TABLE replays ADD PRIMARY KEY (organisation_id, id);
ALTER TABLE replays ADD FOREIGN KEY (organisation_id, handler_id)
    REFERENCES handlers (organisation_id, id) ON DELETE CASCADE;

ALTER TABLE rejected_records DROP CONSTRAINT rejected_records_pkey;
ALTER TABLE rejected_records ADD PRIMARY KEY (organisation_id, id);
DROP INDEX rejected_records_org;  -- the primary key now
