-- Outbox event ids in time order (see the SQLite migration of the same name): `evt_` + 12 hex
-- of the change's milliseconds + 20 random hex, so inserts into `task_outbox.id`'s unique
-- index and `deliveries (event_id, executor_id)` land on the right-hand leaf instead of a
-- random one each.
CREATE OR REPLACE FUNCTION hopper_task_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
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
    VALUES ('evt_' || lpad(to_hex(NEW.updated_at), 12, '0')
                   || substr(replace(gen_random_uuid()::text, '-', ''), 1, 20),
            NEW.id, NEW.instance_id,
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
