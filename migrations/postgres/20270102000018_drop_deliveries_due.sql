-- See the SQLite migration of the same name: unused since the per-executor claims.
DROP INDEX IF EXISTS ix_deliveries_due;
