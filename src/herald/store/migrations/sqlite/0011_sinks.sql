-- Broker sinks (delivery.sinks): each handler's per-type settings (a JSON object: topic
-- template, exchange, bucket...) and its credentials (a JSON object, sealed like secrets).
ALTER TABLE handlers ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
ALTER TABLE handlers ADD COLUMN credentials TEXT;
