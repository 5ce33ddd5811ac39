-- Filter fields of the provider records (query/fields.py): the SIM's MSISDN and the
-- provider's own organisation (payload.data.organisation.id), filled in for stored events.
ALTER TABLE events ADD COLUMN msisdn TEXT;
ALTER TABLE events ADD COLUMN provider_organisation TEXT;

UPDATE events
SET msisdn = convert_from(body, 'UTF8')::jsonb #>> '{sim,msisdn}',
    provider_organisation = convert_from(body, 'UTF8')::jsonb #>> '{payload,data,organisation,id}'
WHERE position('"msisdn"'::bytea IN body) > 0 OR position('"payload"'::bytea IN body) > 0;
