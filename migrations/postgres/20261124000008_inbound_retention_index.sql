-- Inbound events are purged per instance once past `persistence.inbound_retention`; nothing
-- read events by received_at alone (listings go by id, which is time-ordered).
DROP INDEX IF EXISTS ix_inbound_received;
CREATE INDEX ix_inbound_retention ON inbound_events (instance_id, received_at);
