-- The registry of instances. It lives in the root instance's database; every instance, including
-- in-memory orchestration runs, has a row here so the tree survives as a record.
CREATE TABLE hopper_instances (
    instance_id        TEXT PRIMARY KEY,
    scope              TEXT NOT NULL,
    parent_instance_id TEXT REFERENCES hopper_instances (instance_id),
    config             TEXT NOT NULL DEFAULT '{}',
    status             TEXT NOT NULL,
    metadata           TEXT NOT NULL DEFAULT '{}',
    summary            TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE INDEX ix_instances_parent ON hopper_instances (parent_instance_id);

-- Tasks carry their instance id but no foreign key to the registry: a project may keep its tasks
-- in its own database file while the registry stays with the root. Times are epoch milliseconds
-- in both dialects so one set of queries serves both.
CREATE TABLE tasks (
    id                    TEXT PRIMARY KEY,
    instance_id           TEXT NOT NULL,
    parent_task_id        TEXT,
    title                 TEXT NOT NULL,
    description           TEXT NOT NULL DEFAULT '',
    tags                  TEXT NOT NULL DEFAULT '[]',
    priority              BIGINT NOT NULL,
    project               TEXT,
    needs_orchestration   BOOLEAN NOT NULL DEFAULT FALSE,
    executor              TEXT,
    required_capabilities TEXT NOT NULL DEFAULT '[]',
    requester             TEXT,
    source                TEXT,
    status                TEXT NOT NULL,
    routed_to             TEXT,
    routing_reason        TEXT,
    claimed_by            TEXT,
    claimed_at            BIGINT,
    lease_expires_at      BIGINT,
    attempts              BIGINT NOT NULL DEFAULT 0,
    feedback              TEXT,
    failure_reason        TEXT,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL,
    finished_at           BIGINT
);
-- The claim path: only pending rows are indexed, in the order get_next hands them out
-- (priority, then age: ids are UUIDv7 so they sort by creation time). This keeps get_next flat
-- however many finished tasks the table holds.
CREATE INDEX ix_tasks_claim ON tasks (instance_id, priority DESC, id) WHERE status = 'pending';
-- The lease sweeper only looks at claimed rows.
CREATE INDEX ix_tasks_lease ON tasks (lease_expires_at) WHERE status = 'claimed';
CREATE INDEX ix_tasks_instance_status ON tasks (instance_id, status, id);
CREATE INDEX ix_tasks_parent ON tasks (parent_task_id);
CREATE INDEX ix_tasks_finished ON tasks (instance_id, finished_at) WHERE finished_at IS NOT NULL;

-- Append-only audit history of every task.
CREATE TABLE task_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id     TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    at          BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    actor       TEXT,
    detail      TEXT
);
CREATE INDEX ix_task_events_task ON task_events (task_id, id);

-- Parent task -> child work. Written in the parent's database *before* the child insert, so a
-- crash in between leaves a 'pending' row that start-up re-drives (the child id is chosen up
-- front, which makes the re-drive idempotent). kind 'task' finishes with one child task; kind
-- 'run' finishes when a whole orchestration run has no open task left.
CREATE TABLE task_delegations (
    parent_instance_id TEXT NOT NULL,
    parent_task_id     TEXT NOT NULL,
    child_instance_id  TEXT NOT NULL,
    child_task_id      TEXT NOT NULL,
    kind               TEXT NOT NULL,
    state              TEXT NOT NULL,
    delegated_at       BIGINT NOT NULL,
    finished_at        BIGINT,
    PRIMARY KEY (parent_instance_id, parent_task_id)
);
CREATE INDEX ix_delegations_open ON task_delegations (state) WHERE state IN ('pending', 'delegated');
CREATE INDEX ix_delegations_child ON task_delegations (child_instance_id);
