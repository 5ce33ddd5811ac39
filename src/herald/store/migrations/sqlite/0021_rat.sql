-- emnify's q field rat (query/fields.py): the PDP context's RAT type. A lean field, so
-- SQLite reads it from the record (record_field) for every event, stored before or after;
-- the column exists because every event field with a column has one, and stays empty.
ALTER TABLE events ADD COLUMN rat INTEGER;
