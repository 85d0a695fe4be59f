-- The delivery worker claims executor by executor (`Store::claim_deliveries`): each executor's
-- due rows in order, straight from this index, so a backlog of an executor at its concurrency
-- limit (or disabled) is never scanned.
CREATE INDEX ix_deliveries_executor_due ON deliveries (executor_id, next_attempt_at)
    WHERE status = 'pending';
