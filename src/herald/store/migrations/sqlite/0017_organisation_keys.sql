-- The attempt log and the replays carry their handler's organisation, as on PostgreSQL, where
-- 0017 makes every key of the tenants' tables name it (for sharding by organisation). One
-- SQLite file is not sharded: its keys stay as they are.
ALTER TABLE deliveries ADD COLUMN organisation_id INTEGER;
UPDATE deliveries SET organisation_id =
    (SELECT organisation_id FROM handlers WHERE handlers.id = deliveries.handler_id);
ALTER TABLE replays ADD COLUMN organisation_id INTEGER;
UPDATE replays SET organisation_id =
    (SELECT organisation_id FROM handlers WHERE handlers.id = replays.handler_id);
