-- Two-way issue sync (`src/sync`): which task an issue of a synced repository is, both ways.
-- One row per issue and one per task. `origin` says who made the pair (`export`: Hopper opened
-- the issue; `import`: the issue made the task). `pushed_state` is the issue state Hopper
-- last wrote (`closed`), so the webhook that write causes is recognised as its echo.
CREATE TABLE sync_links (
    provider      TEXT NOT NULL,
    repository    TEXT NOT NULL,
    number        TEXT NOT NULL,
    task_id       TEXT NOT NULL UNIQUE,
    project       TEXT NOT NULL,
    url           TEXT NOT NULL,
    -- The reply handle reports to this issue use (JSON), as the provider's reporter reads it.
    handle        TEXT,
    origin        TEXT NOT NULL,
    pushed_state  TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (provider, repository, number)
);
