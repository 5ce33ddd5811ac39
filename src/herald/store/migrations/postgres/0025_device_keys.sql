-- Device keys (issue 32): the SIM id, ICCID, IMSI, user and target id of an event that
-- names an endpoint are found through this small table (a row per key and endpoint, not per
-- event) and the endpoint index; the columns stay (the filter checks them), but their
-- indexes keep only the events that name no endpoint (store.sql.where_clause). The keys of
-- the rows already stored are copied here in this migration.
CREATE TABLE device_keys (
    organisation_id BIGINT NOT NULL,
    field           TEXT NOT NULL,     -- query/fields.py: a Field with device_key
    value           TEXT NOT NULL,
    endpoint_id     BIGINT NOT NULL,
    PRIMARY KEY (organisation_id, field, value, endpoint_id)
);
INSERT INTO device_keys (organisation_id, field, value, endpoint_id)
SELECT DISTINCT organisation_id, key.field, key.value, endpoint_id
FROM events, LATERAL (VALUES
    ('sim', sim_id::text), ('iccid', iccid), ('imsi', imsi), ('user', user_id::text),
    ('target_id', target_id)
) AS key (field, value)
WHERE endpoint_id IS NOT NULL AND key.value IS NOT NULL;
DROP INDEX events_org_user_ts;
DROP INDEX events_org_sim_ts;
DROP INDEX events_org_iccid;
DROP INDEX events_org_imsi;
DROP INDEX events_org_target;
CREATE INDEX events_org_user_ts ON events (organisation_id, user_id, ts, id)
    WHERE endpoint_id IS NULL AND user_id IS NOT NULL;
CREATE INDEX events_org_sim_ts ON events (organisation_id, sim_id, ts, id)
    WHERE endpoint_id IS NULL AND sim_id IS NOT NULL;
CREATE INDEX events_org_iccid ON events (organisation_id, iccid)
    WHERE endpoint_id IS NULL AND iccid IS NOT NULL;
CREATE INDEX events_org_imsi ON events (organisation_id, imsi)
    WHERE endpoint_id IS NULL AND imsi IS NOT NULL;
CREATE INDEX events_org_target ON events (organisation_id, target_id, ts, id)
    WHERE endpoint_id IS NULL AND target_id IS NOT NULL;
