-- Outbox event ids in time order: `evt_` + 12 hex of the change's milliseconds + 20 random hex
-- (32 hex, as before, the shape of a UUIDv7). A random id put every insert on a random leaf of
-- `task_outbox.id`'s unique index, and of `deliveries (event_id, executor_id)` after it, so
-- each group-commit batch wrote a whole page per row to the WAL: with reports flowing beside
-- ingest, the outbox alone added 7.3 KB written per webhook (29.2 → 36.5 KB, dispatcher
-- stopped; `HOPPER_BENCH_REPORTING=1 cargo bench --bench inbound`). In time order they land
-- on the right-hand leaf, which each batch writes once.
DROP TRIGGER tr_task_outbox_insert;
DROP TRIGGER tr_task_outbox_update;

CREATE TRIGGER tr_task_outbox_insert AFTER INSERT ON tasks
WHEN NEW.status = 'pending' AND EXISTS (SELECT 1 FROM outbox_wanted)
BEGIN
    INSERT INTO task_outbox (id, task_id, instance_id, event, at)
    VALUES ('evt_' || printf('%012x', NEW.updated_at) || lower(hex(randomblob(10))), NEW.id,
            NEW.instance_id, 'task.available', NEW.updated_at);
END;

CREATE TRIGGER tr_task_outbox_update AFTER UPDATE OF status, lease_id ON tasks
WHEN NEW.status <> 'routed'
  AND (NEW.status IS NOT OLD.status
       OR (NEW.status = 'claimed' AND NEW.lease_id IS NOT OLD.lease_id))
  AND EXISTS (SELECT 1 FROM outbox_wanted)
BEGIN
    INSERT INTO task_outbox (id, task_id, instance_id, event, at)
    VALUES ('evt_' || printf('%012x', NEW.updated_at) || lower(hex(randomblob(10))), NEW.id,
            NEW.instance_id,
            CASE NEW.status
                WHEN 'pending' THEN 'task.available'
                WHEN 'claimed' THEN 'task.assigned'
                WHEN 'cancelled' THEN 'task.cancelled'
                ELSE 'task.updated'
            END,
            NEW.updated_at);
END;
