-- Delegations are looked up by their parent task alone (bubbling, re-drive, inbound routing);
-- the primary key leads with the instance, so without this every lookup scanned the table.
CREATE INDEX ix_delegations_parent_task ON task_delegations (parent_task_id);
