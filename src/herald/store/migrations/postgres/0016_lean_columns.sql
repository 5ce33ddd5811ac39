-- On SQLite, 0016 stops writing the lean columns (query/fields.py: Field.lean). PostgreSQL
-- keeps them: it cannot decompress a record in SQL, so its filters read the columns.
SELECT 1;
