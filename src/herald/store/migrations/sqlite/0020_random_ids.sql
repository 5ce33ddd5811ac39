-- Handler and quarantine ids are no longer a counter shared by every organisation (issue 28):
-- each is a random free slot of its creation millisecond (herald.ids.draw_public_ids).
-- Nothing to change here: both tables' id is their primary key (an index by id), and
-- existing rows keep their ids. The number matches PostgreSQL's 0020 (an index there).
SELECT 1;
