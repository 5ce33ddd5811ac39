-- One owner keeps the device states (herald.devices.projector): the process holding the
-- lease on the projection's row (owner, until owner_until_ms) folds the log in memory and
-- writes the changed states behind, in groups, with the position they include.
-- as_of_ms: every event committed before it is in the written states (Herald-State-As-Of).
ALTER TABLE device_projection ADD COLUMN owner TEXT;
ALTER TABLE device_projection ADD COLUMN owner_until_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE device_projection ADD COLUMN as_of_ms INTEGER NOT NULL DEFAULT 0;
