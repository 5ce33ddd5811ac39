-- Filter fields of the provider records (query/fields.py): the SIM's MSISDN and the
-- provider's own organisation (payload.data.organisation.id), filled in for stored events.
ALTER TABLE events ADD COLUMN msisdn TEXT;
ALTER TABLE events ADD COLUMN provider_organisation TEXT;

UPDATE events SET msisdn = CAST(json_extract(CAST(body AS TEXT), '$.sim.msisdn') AS TEXT)
WHERE instr(body, '"msisdn"') > 0;
UPDATE events
SET provider_organisation =
    CAST(json_extract(CAST(body AS TEXT), '$.payload.data.organisation.id') AS TEXT)
WHERE instr(body, '"payload"') > 0;
