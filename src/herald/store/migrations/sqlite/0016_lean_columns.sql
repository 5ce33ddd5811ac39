-- The lean columns (query/fields.py: Field.lean; store/sql.py: LEAN_COLUMNS) are written empty
-- from this version on: a filter or sort on one of those fields reads it from the record (the
-- SQL function record_field), which holds every field already. Rows written before keep
-- their copies until `herald db migrate` empties them, resumably, in chunks; the columns stay
-- in the schema, as dropping a column rewrites the whole table in one transaction. The space
-- freed inside pages is reused as retention deletes the old rows, or at once by VACUUM.
SELECT 1;
