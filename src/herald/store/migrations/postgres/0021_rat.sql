-- emnify's q field rat (query/fields.py): the PDP context's RAT type
-- (detail.pdp_context.rat_type), a column PostgreSQL's filters read. Filled in for the
-- events stored uncompressed (dictionary 0); PostgreSQL cannot decompress a record in SQL,
-- so events stored compressed before this migration have no rat (they age out with the
-- retention window).
ALTER TABLE events ADD COLUMN rat BIGINT;

UPDATE events
SET rat = (convert_from(body, 'UTF8')::jsonb #>> '{detail,pdp_context,rat_type}')::bigint
WHERE dictionary_id = 0
  AND position('"rat_type"'::bytea IN body) > 0
  AND jsonb_typeof(convert_from(body, 'UTF8')::jsonb #> '{detail,pdp_context,rat_type}') = 'number'
  AND (convert_from(body, 'UTF8')::jsonb #>> '{detail,pdp_context,rat_type}') ~ '^-?[0-9]{1,18}$';
