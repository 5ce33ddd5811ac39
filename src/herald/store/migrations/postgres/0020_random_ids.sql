-- Handler and quarantine ids are no longer a counter shared by every organisation (issue 28):
-- each is a random free slot of its creation millisecond (herald.ids.draw_public_ids), so
-- a new row's writer reads the ids of its millisecond. handlers has a plain index on id
-- (0017); rejected_records gets one (also what a retry's release by id uses). A plain
-- index, not a unique key: every key of a tenant's table names the organisation (0017).
CREATE INDEX rejected_records_id ON rejected_records (id);
