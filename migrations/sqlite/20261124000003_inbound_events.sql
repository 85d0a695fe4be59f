-- Every webhook, email or HTTP event Hopper accepted, verbatim, so it can be inspected and
-- replayed. Written in the same transaction as the task it created: a 2xx to the sender means
-- both are on disk. The unique key drops redeliveries (NULL delivery ids never collide).
CREATE TABLE inbound_events (
    id           TEXT PRIMARY KEY,
    source       TEXT NOT NULL,
    endpoint     TEXT NOT NULL,
    delivery_id  TEXT,
    event_type   TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    headers      TEXT NOT NULL,
    body         BLOB NOT NULL,
    status       TEXT NOT NULL,
    reason       TEXT,
    instance_id  TEXT NOT NULL,
    task_id      TEXT,
    replay_of    TEXT,
    routed_at    BIGINT
);
CREATE UNIQUE INDEX ux_inbound_delivery ON inbound_events (source, delivery_id);
CREATE INDEX ix_inbound_received ON inbound_events (received_at);
-- Start-up finds accepted events whose task has not been routed yet.
CREATE INDEX ix_inbound_unrouted ON inbound_events (received_at) WHERE status = 'accepted' AND routed_at IS NULL;
