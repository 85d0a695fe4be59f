-- Consolidation's own state per instance (`src/memory/job.rs`): the routing profile it last
-- committed and its watermark (the highest episode `seq` folded in), moved only after the
-- repository took the commit, so a run that fails or is killed halfway is redone from the same
-- place; and a lease, so that of several servers on one database only one runs it.
CREATE TABLE memory_state (
    instance_id  TEXT PRIMARY KEY,
    profile      TEXT,
    watermark    BIGINT NOT NULL DEFAULT 0,
    last_commit  TEXT,
    last_run_at  BIGINT,
    lease_owner  TEXT,
    lease_until  BIGINT
);
