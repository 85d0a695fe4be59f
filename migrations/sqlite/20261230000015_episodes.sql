-- Episodic memory (`src/memory`): what happened to tasks, for routing to learn from and for
-- the nightly consolidation. Written by triggers on `tasks`, in the same transaction as the
-- change, like the outbox: every writer (the group committer, sqlx, the PostgreSQL batches)
-- records them and none can forget. Only while `memory_wanted` has its row (the engine puts
-- it there when `memory.episodic.backend` is not `null`).
--   routed     a task sent to a project (`routed_to` set);
--   corrected  `routed_to` changed by a re-route;
--   completed / failed  a delegated copy's work finished (the copy has a parent: the top task
--              finishing by bubbling is the same piece of work, counted once).
CREATE TABLE memory_wanted (
    id INTEGER PRIMARY KEY CHECK (id = 1)
);

CREATE TABLE episodes (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id     TEXT NOT NULL,
    task_id         TEXT NOT NULL,
    kind            TEXT NOT NULL,
    at              BIGINT NOT NULL,
    project         TEXT,
    from_project    TEXT,
    decided_by      TEXT,
    confidence      DOUBLE PRECISION,
    title           TEXT NOT NULL,
    text            TEXT NOT NULL,
    tags            TEXT NOT NULL,
    quality         DOUBLE PRECISION,
    routing_correct BOOLEAN,
    notes           TEXT,
    duration_ms     BIGINT
);
CREATE INDEX ix_episodes_task ON episodes (task_id);

-- Full-text search over title, text, tags and notes (external content: the text is stored once).
CREATE VIRTUAL TABLE episodes_fts USING fts5(
    title, text, tags, notes, content = 'episodes', content_rowid = 'seq'
);
CREATE TRIGGER tr_episodes_fts_insert AFTER INSERT ON episodes BEGIN
    INSERT INTO episodes_fts (rowid, title, text, tags, notes)
    VALUES (NEW.seq, NEW.title, NEW.text, NEW.tags, coalesce(NEW.notes, ''));
END;
CREATE TRIGGER tr_episodes_fts_delete AFTER DELETE ON episodes BEGIN
    INSERT INTO episodes_fts (episodes_fts, rowid, title, text, tags, notes)
    VALUES ('delete', OLD.seq, OLD.title, OLD.text, OLD.tags, coalesce(OLD.notes, ''));
END;

CREATE TRIGGER tr_episode_routed_insert AFTER INSERT ON tasks
WHEN NEW.status = 'routed' AND NEW.routed_to IS NOT NULL AND EXISTS (SELECT 1 FROM memory_wanted)
BEGIN
    INSERT INTO episodes (instance_id, task_id, kind, at, project, decided_by, title, text, tags)
    VALUES (NEW.instance_id, NEW.id, 'routed', NEW.updated_at,
            CASE WHEN NEW.routed_to LIKE 'hopper-%' THEN substr(NEW.routed_to, 8) ELSE NEW.routed_to END,
            'routing', NEW.title, substr(NEW.description, 1, 2000), NEW.tags);
END;

-- A re-route goes through pending (`routed_to` cleared) and back to routed elsewhere: routing
-- to another project than the task's last episode says is a correction, to the same one (a
-- recovery re-driving the same decision) is no new episode.
CREATE TRIGGER tr_episode_routed_update AFTER UPDATE OF routed_to ON tasks
WHEN NEW.routed_to IS NOT NULL AND NEW.routed_to IS NOT OLD.routed_to
  AND EXISTS (SELECT 1 FROM memory_wanted)
  AND (SELECT project FROM episodes WHERE task_id = NEW.id AND kind IN ('routed', 'corrected')
       ORDER BY seq DESC LIMIT 1)
      IS NOT (CASE WHEN NEW.routed_to LIKE 'hopper-%' THEN substr(NEW.routed_to, 8)
                   ELSE NEW.routed_to END)
BEGIN
    INSERT INTO episodes (instance_id, task_id, kind, at, project, from_project, decided_by,
                          title, text, tags)
    SELECT NEW.instance_id, NEW.id,
           CASE WHEN last.project IS NULL THEN 'routed' ELSE 'corrected' END,
           NEW.updated_at,
           CASE WHEN NEW.routed_to LIKE 'hopper-%' THEN substr(NEW.routed_to, 8) ELSE NEW.routed_to END,
           last.project,
           CASE WHEN last.project IS NULL THEN 'routing' ELSE 'correction' END,
           NEW.title, substr(NEW.description, 1, 2000), NEW.tags
    FROM (SELECT (SELECT project FROM episodes
                  WHERE task_id = NEW.id AND kind IN ('routed', 'corrected')
                  ORDER BY seq DESC LIMIT 1) AS project) AS last;
END;

CREATE TRIGGER tr_episode_finished AFTER UPDATE OF status ON tasks
WHEN NEW.status IN ('done', 'failed') AND OLD.status NOT IN ('done', 'failed')
  AND NEW.parent_task_id IS NOT NULL AND EXISTS (SELECT 1 FROM memory_wanted)
BEGIN
    INSERT INTO episodes (instance_id, task_id, kind, at, project, title, text, tags, quality,
                          routing_correct, notes, duration_ms)
    VALUES (NEW.instance_id, NEW.id,
            CASE NEW.status WHEN 'done' THEN 'completed' ELSE 'failed' END,
            NEW.updated_at,
            coalesce(NEW.project,
                     CASE WHEN NEW.instance_id LIKE 'hopper-%' THEN substr(NEW.instance_id, 8)
                          ELSE NEW.instance_id END),
            NEW.title, substr(NEW.description, 1, 2000), NEW.tags,
            json_extract(NEW.feedback, '$.quality_score'),
            json_extract(NEW.feedback, '$.was_good_match'),
            coalesce(json_extract(NEW.feedback, '$.notes'), NEW.failure_reason),
            CASE WHEN NEW.claimed_at IS NOT NULL THEN NEW.updated_at - NEW.claimed_at END);
END;
