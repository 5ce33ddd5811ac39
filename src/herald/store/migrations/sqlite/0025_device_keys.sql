-- Device keys (issue 32): the SIM id, ICCID, IMSI, user and target id of an event that
-- names an endpoint are found through this small table (a row per key and endpoint, not per
-- event) and the endpoint index, then checked against the record; their columns are left
-- empty for such events, and filled only for events that name no endpoint, which the partial
-- indexes below keep (store.sql.where_clause). Rows written before keep their columns, which
-- the partial indexes find, until `herald db migrate` moves their keys here and empties them
-- (store.records.compact_records). target_type is read from the record (a lean field).
CREATE TABLE device_keys (
    organisation_id INTEGER NOT NULL,
    field           TEXT NOT NULL,     -- query/fields.py: a Field with device_key
    value           TEXT NOT NULL,
    endpoint_id     INTEGER NOT NULL,
    PRIMARY KEY (organisation_id, field, value, endpoint_id)
) WITHOUT ROWID;
DROP INDEX events_org_target;
CREATE INDEX events_org_target ON events (organisation_id, target_id, ts, id)
    WHERE target_id IS NOT NULL;
