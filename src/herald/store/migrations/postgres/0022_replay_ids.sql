-- Attempt-log and replay ids are no longer counters shared by every organisation (issue 28):
-- each is its handler's next, a random slot of its millisecond above the handler's last id
-- (herald.ids.next_public_id), found by (handler_id, id). deliveries has that index (0002);
-- replays gets one (its partial index holds only the pending ones). Existing rows keep
-- their ids (small counters, which sort first).
CREATE INDEX replays_handler ON replays (handler_id, id);
