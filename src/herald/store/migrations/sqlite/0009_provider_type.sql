-- The provider's own type of a record (query/fields.py: provider_type): the type id of an
-- emnify or 1NCE record, the moniker of a Stacuity one, as the provider sent it.
ALTER TABLE events ADD COLUMN provider_type TEXT;

UPDATE events SET provider_type = CAST(json_extract(CAST(body AS TEXT), '$.provider_type') AS TEXT)
WHERE instr(body, '"provider_type"') > 0;
