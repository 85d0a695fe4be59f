-- In-memory orchestration runs belong to the process that created them. With several processes
-- sharing one database, a run is only "lost" when its owner stopped heart-beating, not merely
-- because another process cannot see it.
ALTER TABLE hopper_instances ADD COLUMN owner TEXT;

CREATE TABLE hopper_processes (
    boot_id      TEXT PRIMARY KEY,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
