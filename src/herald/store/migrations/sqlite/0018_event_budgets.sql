-- An organisation's own event budget (issue 28): events per second, the burst its bucket
-- holds, and bytes per UTC day; NULL: the server's default (HERALD_EVENT_BUDGET_*).
ALTER TABLE organisations ADD COLUMN events_per_second REAL;
ALTER TABLE organisations ADD COLUMN event_burst INTEGER;
ALTER TABLE organisations ADD COLUMN bytes_per_day INTEGER;
