-- A new task's episode costs its commit one row and nothing else. Recording it was 3.8 us of
-- a routed task's insert (11.4 us against 7.5 us without episodes; 40,000 inserts, 20 to a
-- commit, Python's sqlite3), of which AUTOINCREMENT (reading and rewriting `sqlite_sequence`)
-- took 1.1 us and `ix_episodes_task` 1.2 us; ingest measured 7% slower with episodes on
-- (`cargo bench --bench inbound`, 12 interleaved pairs, 8,632 vs 9,285 deliveries/s).
--
-- `seq` becomes a plain rowid: SQLite gives a new row one more than the largest, so `seq` still
-- only grows, which the index mark (`episode_index.upto`) and the consolidation watermark rely
-- on, as long as the newest episode is never deleted; nothing deletes episodes.
--
-- The task index served one lookup: which project a task's last routing episode named, when
-- it is routed again (a correction or the same decision re-driven). That answer is in the task
-- itself while it is routed (`routed_to`), and a re-route takes the task back first (routed_to
-- cleared), so only then is it kept aside, in `episode_reroutes`: a row per task taken back,
-- written on the rare way back instead of an index entry on every insert, and taken out when
-- the task is routed elsewhere.

DROP TRIGGER tr_episode_routed_insert;
DROP TRIGGER tr_episode_routed_update;
DROP TRIGGER tr_episode_finished;
DROP TRIGGER tr_episode_index_advance;
DROP TRIGGER tr_episodes_fts_delete;

CREATE TABLE episodes_lean (
    seq             INTEGER PRIMARY KEY,
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
INSERT INTO episodes_lean SELECT * FROM episodes ORDER BY seq;
DROP TABLE episodes;
ALTER TABLE episodes_lean RENAME TO episodes;

-- The project a taken-back task was routed to, until it is routed again.
CREATE TABLE episode_reroutes (
    task_id TEXT PRIMARY KEY,
    project TEXT NOT NULL
);
INSERT INTO episode_reroutes (task_id, project)
SELECT e.task_id, e.project
FROM (SELECT max(seq) AS seq FROM episodes WHERE kind IN ('routed', 'corrected')
      GROUP BY task_id) AS last
JOIN episodes e ON e.seq = last.seq
JOIN tasks t ON t.id = e.task_id AND t.routed_to IS NULL
WHERE e.project IS NOT NULL;

CREATE TRIGGER tr_episode_routed_insert AFTER INSERT ON tasks
WHEN NEW.status = 'routed' AND NEW.routed_to IS NOT NULL AND EXISTS (SELECT 1 FROM memory_wanted)
BEGIN
    INSERT INTO episodes (instance_id, task_id, kind, at, project, decided_by, title, text, tags)
    VALUES (NEW.instance_id, NEW.id, 'routed', NEW.updated_at,
            CASE WHEN NEW.routed_to LIKE 'hopper-%' THEN substr(NEW.routed_to, 8) ELSE NEW.routed_to END,
            'routing', NEW.title, substr(NEW.description, 1, 2000), NEW.tags);
END;

-- Taken back: remember where it was, for the next routing to compare with.
CREATE TRIGGER tr_episode_taken_back AFTER UPDATE OF routed_to ON tasks
WHEN NEW.routed_to IS NULL AND OLD.routed_to IS NOT NULL AND EXISTS (SELECT 1 FROM memory_wanted)
BEGIN
    INSERT INTO episode_reroutes (task_id, project)
    VALUES (NEW.id, CASE WHEN OLD.routed_to LIKE 'hopper-%' THEN substr(OLD.routed_to, 8)
                         ELSE OLD.routed_to END)
    ON CONFLICT (task_id) DO UPDATE SET project = excluded.project;
END;

-- Routed (again): to another project than it was last routed to is a correction, to the same
-- one (a recovery re-driving the same decision) no new episode, and a first routing a routing.
CREATE TRIGGER tr_episode_routed_update AFTER UPDATE OF routed_to ON tasks
WHEN NEW.routed_to IS NOT NULL AND NEW.routed_to IS NOT OLD.routed_to
  AND EXISTS (SELECT 1 FROM memory_wanted)
  AND coalesce(CASE WHEN OLD.routed_to LIKE 'hopper-%' THEN substr(OLD.routed_to, 8)
                    ELSE OLD.routed_to END,
               (SELECT project FROM episode_reroutes WHERE task_id = NEW.id))
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
    FROM (SELECT coalesce(CASE WHEN OLD.routed_to LIKE 'hopper-%' THEN substr(OLD.routed_to, 8)
                               ELSE OLD.routed_to END,
                          (SELECT project FROM episode_reroutes WHERE task_id = NEW.id))
                 AS project) AS last;
    DELETE FROM episode_reroutes WHERE task_id = NEW.id;
END;

-- As migration 15 wrote it.
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

-- As migration 17 wrote them.
CREATE TRIGGER tr_episode_index_advance AFTER UPDATE OF upto ON episode_index
WHEN NEW.upto > OLD.upto
BEGIN
    INSERT INTO episodes_fts (rowid, title, text, tags, notes)
    SELECT seq, title, text, tags, coalesce(notes, '') FROM episodes
    WHERE seq > OLD.upto AND seq <= NEW.upto;
END;
CREATE TRIGGER tr_episodes_fts_delete AFTER DELETE ON episodes
WHEN OLD.seq <= (SELECT upto FROM episode_index)
BEGIN
    INSERT INTO episodes_fts (episodes_fts, rowid, title, text, tags, notes)
    VALUES ('delete', OLD.seq, OLD.title, OLD.text, OLD.tags, coalesce(OLD.notes, ''));
END;
