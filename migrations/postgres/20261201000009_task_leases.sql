-- Fenced leases: every claim gets a fresh lease id, and heartbeat/complete/fail/release must
-- present it. A worker whose lease expired or was taken over can no longer change the task.
-- Kept on finished tasks so that a retried completion under the same lease is recognised.
ALTER TABLE tasks ADD COLUMN lease_id TEXT;
