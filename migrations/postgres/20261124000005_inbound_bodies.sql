-- Raw bodies move out of inbound_events into a table of their own. SQLite rewrites a whole
-- row (overflow pages included) on every UPDATE, so marking an event routed used to write a
-- webhook's body, often 10 KB or more, a second time; the body table is insert-only.
CREATE TABLE inbound_bodies (
    event_id  TEXT PRIMARY KEY REFERENCES inbound_events (id) ON DELETE CASCADE,
    body      BYTEA NOT NULL
);
INSERT INTO inbound_bodies (event_id, body) SELECT id, body FROM inbound_events;
ALTER TABLE inbound_events DROP COLUMN body;
