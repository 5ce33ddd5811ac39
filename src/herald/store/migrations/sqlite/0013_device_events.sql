-- State changes as events (herald.devices.changes): an organisation opts in with
-- device_events; the projector emits no change for log entries up to quiet_until_seq (the
-- end of the log when the states were last rebuilt: those changes were emitted before).
ALTER TABLE organisations ADD COLUMN device_events INTEGER NOT NULL DEFAULT 0;
ALTER TABLE device_projection ADD COLUMN quiet_until_seq INTEGER NOT NULL DEFAULT 0;
