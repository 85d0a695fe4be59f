-- The v1.0.0 spec's optional due date of a task, in epoch milliseconds like every other time.
ALTER TABLE tasks ADD COLUMN due_at BIGINT;
