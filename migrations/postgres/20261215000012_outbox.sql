-- The transactional outbox: every task change an executor may hear about, recorded by the
-- database itself in the same transaction as the change. Triggers rather than code: the SQLite
-- group committer (rusqlite), sqlx and the PostgreSQL batch statements all write tasks, and none
-- of them can forget the event. The dispatcher (src/outbound/dispatch.rs) turns rows into
-- deliveries and deletes them; the table stays near empty.
--
-- Only where someone can listen: the triggers record nothing until `outbox_wanted` has its one
-- row. Every task write paid for an outbox row otherwise (measured on SQLite: 26-27 KB -> 34-37
-- KB written per inbound webhook, 15-30% lower `cargo bench --bench inbound`/`core`), even with
-- no executor at all. The engine inserts the row into every open store as soon as an executor
-- with a webhook exists, and into each store it opens from then on (src/engine/outbox.rs); it
-- never deletes it. PostgreSQL refuses a subquery in a trigger's WHEN, so the function checks.
CREATE TABLE outbox_wanted (
    id INTEGER PRIMARY KEY CHECK (id = 1)
);

CREATE TABLE task_outbox (
    seq         BIGSERIAL PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,            -- evt_ + 32 hex
    task_id     TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    event       TEXT NOT NULL,                   -- task.available | task.assigned | ...
    at          BIGINT NOT NULL
);

CREATE FUNCTION hopper_task_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM outbox_wanted) THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF NEW.status <> 'pending' THEN
            RETURN NULL;
        END IF;
    ELSIF NEW.status IS NOT DISTINCT FROM OLD.status
          AND NOT (NEW.status = 'claimed' AND NEW.lease_id IS DISTINCT FROM OLD.lease_id) THEN
        -- A heartbeat or any other change that is neither a status change nor a takeover.
        RETURN NULL;
    END IF;
    INSERT INTO task_outbox (id, task_id, instance_id, event, at)
    VALUES ('evt_' || replace(gen_random_uuid()::text, '-', ''), NEW.id, NEW.instance_id,
            CASE NEW.status
                WHEN 'pending' THEN 'task.available'
                WHEN 'claimed' THEN 'task.assigned'
                WHEN 'cancelled' THEN 'task.cancelled'
                ELSE 'task.updated'
            END,
            NEW.updated_at);
    RETURN NULL;
END;
$$;

CREATE TRIGGER tr_task_outbox_insert AFTER INSERT ON tasks
FOR EACH ROW WHEN (NEW.status = 'pending') EXECUTE FUNCTION hopper_task_outbox();

-- A status change, or a takeover (a claimed task claimed again under a new lease). A heartbeat
-- changes neither, so it records nothing. Nor does a task becoming `routed`: it now waits on a
-- child task, which no executor can claim or finish through the parent (a claim of a routed
-- task is refused); the work reaches executors as the child's own `task.available` (a
-- project's executors also serve its runs), and the parent's end as its `task.updated`. On an
-- inbound webhook routed at once that is one row of three not written.
CREATE TRIGGER tr_task_outbox_update AFTER UPDATE OF status, lease_id ON tasks
FOR EACH ROW WHEN (NEW.status <> 'routed'
    AND (NEW.status IS DISTINCT FROM OLD.status
         OR (NEW.status = 'claimed' AND NEW.lease_id IS DISTINCT FROM OLD.lease_id)))
EXECUTE FUNCTION hopper_task_outbox();

-- One message to one executor (the root store only). The id is the Standard Webhooks
-- `webhook-id`, stable across retries; UNIQUE (event_id, executor_id) makes the fan-out
-- idempotent when the dispatcher runs over the same outbox rows twice.
CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,            -- msg_<uuidv7>
    executor_id     TEXT NOT NULL,
    event_id        TEXT NOT NULL,               -- task_outbox.id
    event           TEXT NOT NULL,
    task_id         TEXT NOT NULL,
    instance_id     TEXT NOT NULL,
    payload         TEXT NOT NULL,               -- the exact body that is signed
    lease_id        TEXT,                        -- auto_claim: the claim it carries
    status          TEXT NOT NULL,               -- pending | delivered | dead | cancelled
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_by       TEXT,                        -- the worker that is sending it
    locked_until    BIGINT,
    last_status     BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    UNIQUE (event_id, executor_id)
);
CREATE INDEX ix_deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX ix_deliveries_executor ON deliveries (executor_id, status, created_at);
CREATE INDEX ix_deliveries_task ON deliveries (task_id);

-- Every attempt, for `hopper deliveries show`.
CREATE TABLE delivery_attempts (
    delivery_id TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    status_code BIGINT,
    latency_ms  BIGINT NOT NULL,
    response    TEXT,                            -- the first outbound.response_excerpt_bytes
    error       TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
