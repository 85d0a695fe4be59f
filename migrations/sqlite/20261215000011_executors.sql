-- Executors: who does the work of a project instance, where their work is delivered, and what
-- they can do. Kept in the root instance's database, beside the registry.
CREATE TABLE executors (
    id              TEXT PRIMARY KEY,            -- exec_<uuidv7>
    name            TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,               -- project | human | external | ci
    project         TEXT NOT NULL,               -- the instance it serves, e.g. hopper-sark
    capabilities    TEXT NOT NULL DEFAULT '[]',  -- JSON array of strings
    webhook_url     TEXT,                        -- none: the executor pulls with get_next
    events          TEXT NOT NULL DEFAULT '[]',  -- JSON array: task.available, task.assigned, ...
    auto_claim      BOOLEAN NOT NULL DEFAULT FALSE,
    velocity        TEXT,                        -- fast | medium | slow | glacial (v1.0.0 spec)
    sla             TEXT,                        -- JSON object (v1.0.0 spec)
    priority_boost  TEXT NOT NULL DEFAULT '{}',  -- JSON object: tag or priority -> factor
    config          TEXT NOT NULL DEFAULT '{}',  -- executor_config (v1.0.0 spec)
    enabled         BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason TEXT,
    disabled_at     BIGINT,
    -- The Standard Webhooks signing secret (whsec_...). Kept, not hashed: Hopper must sign with
    -- it. Never returned after registration or rotation.
    secret          TEXT NOT NULL,
    -- During a rotation both secrets sign, until previous_secret_until.
    previous_secret       TEXT,
    previous_secret_until BIGINT,
    -- Start of the current run of failed deliveries (none while deliveries succeed).
    failing_since   BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX ix_executors_project ON executors (project);

-- API tokens beyond the configured admin token. Only a SHA-256 of each is kept: tokens are 256
-- random bits, so a fast hash is enough and a lookup by hash needs no secret comparison.
CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,                -- tok_<uuidv7>
    token_hash  TEXT NOT NULL UNIQUE,            -- hex SHA-256 of the token
    role        TEXT NOT NULL,                   -- admin | read | executor
    executor_id TEXT,                            -- the executor an executor token acts as
    name        TEXT,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX ix_api_tokens_executor ON api_tokens (executor_id);

-- What happened to an executor (registered, secret rotated, disabled, enabled, ...).
CREATE TABLE executor_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    executor_id TEXT NOT NULL,
    at          BIGINT NOT NULL,
    kind        TEXT NOT NULL,                   -- e.g. executor.disabled
    detail      TEXT
);
CREATE INDEX ix_executor_events ON executor_events (executor_id, id);
