-- No query looks tasks up by parent (delegations do that, with their own index), yet every
-- insert paid for this index: one more B-tree, and on SQLite about six pages per group commit.
DROP INDEX IF EXISTS ix_tasks_parent;
