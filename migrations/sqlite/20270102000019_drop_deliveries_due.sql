-- `ix_deliveries_due` (next_attempt_at, pending rows) predates the per-executor claims, which
-- read `ix_deliveries_executor_due`; only the backlog gauge's oldest-pending query still used
-- it, and that is now part of the gauge's per-executor count. Every insert, status change and
-- retry of a delivery (three per report) maintained it for nothing.
DROP INDEX IF EXISTS ix_deliveries_due;
