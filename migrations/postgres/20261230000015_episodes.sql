-- Episodic memory (`src/memory`): what happened to tasks, for routing to learn from and for
-- the nightly consolidation. Written by triggers on `tasks`, in the same transaction as the
-- change, like the outbox, and only while `memory_wanted` has its row. See the SQLite
-- migration of the same name for the kinds.
CREATE TABLE memory_wanted (
    id INTEGER PRIMARY KEY CHECK (id = 1)
);

CREATE TABLE episodes (
    seq             BIGSERIAL PRIMARY KEY,
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
    duration_ms     BIGINT,
    -- Full-text search: the title weighs most, then tags, then the text and notes.
    search          tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('simple', title), 'A')
        || setweight(to_tsvector('simple', tags), 'B')
        || setweight(to_tsvector('simple', text || ' ' || coalesce(notes, '')), 'C')
    ) STORED
);
CREATE INDEX ix_episodes_task ON episodes (task_id);
CREATE INDEX ix_episodes_search ON episodes USING GIN (search);

CREATE FUNCTION hopper_project_name(id TEXT) RETURNS TEXT LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN id LIKE 'hopper-%' THEN substr(id, 8) ELSE id END
$$;

CREATE FUNCTION hopper_episode() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    last_project TEXT;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM memory_wanted) THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF NEW.status = 'routed' AND NEW.routed_to IS NOT NULL THEN
            INSERT INTO episodes (instance_id, task_id, kind, at, project, decided_by, title,
                                  text, tags)
            VALUES (NEW.instance_id, NEW.id, 'routed', NEW.updated_at,
                    hopper_project_name(NEW.routed_to), 'routing', NEW.title,
                    substr(NEW.description, 1, 2000), NEW.tags);
        END IF;
        RETURN NULL;
    END IF;
    -- A re-route goes through pending (`routed_to` cleared) and back to routed elsewhere:
    -- routing to another project than the task's last episode says is a correction, to the
    -- same one (recovery re-driving the same decision) is no new episode.
    IF NEW.routed_to IS NOT NULL AND NEW.routed_to IS DISTINCT FROM OLD.routed_to THEN
        SELECT project INTO last_project FROM episodes
        WHERE task_id = NEW.id AND kind IN ('routed', 'corrected') ORDER BY seq DESC LIMIT 1;
        IF last_project IS DISTINCT FROM hopper_project_name(NEW.routed_to) THEN
            INSERT INTO episodes (instance_id, task_id, kind, at, project, from_project,
                                  decided_by, title, text, tags)
            VALUES (NEW.instance_id, NEW.id,
                    CASE WHEN last_project IS NULL THEN 'routed' ELSE 'corrected' END,
                    NEW.updated_at, hopper_project_name(NEW.routed_to), last_project,
                    CASE WHEN last_project IS NULL THEN 'routing' ELSE 'correction' END,
                    NEW.title, substr(NEW.description, 1, 2000), NEW.tags);
        END IF;
    END IF;
    IF NEW.status IN ('done', 'failed') AND OLD.status NOT IN ('done', 'failed')
       AND NEW.parent_task_id IS NOT NULL THEN
        INSERT INTO episodes (instance_id, task_id, kind, at, project, title, text, tags,
                              quality, routing_correct, notes, duration_ms)
        VALUES (NEW.instance_id, NEW.id,
                CASE NEW.status WHEN 'done' THEN 'completed' ELSE 'failed' END,
                NEW.updated_at,
                coalesce(NEW.project, hopper_project_name(NEW.instance_id)),
                NEW.title, substr(NEW.description, 1, 2000), NEW.tags,
                (NEW.feedback::jsonb ->> 'quality_score')::double precision,
                (NEW.feedback::jsonb ->> 'was_good_match')::boolean,
                coalesce(NEW.feedback::jsonb ->> 'notes', NEW.failure_reason),
                CASE WHEN NEW.claimed_at IS NOT NULL THEN NEW.updated_at - NEW.claimed_at END);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER tr_episode_insert AFTER INSERT ON tasks
FOR EACH ROW WHEN (NEW.status = 'routed') EXECUTE FUNCTION hopper_episode();
CREATE TRIGGER tr_episode_update AFTER UPDATE OF status, routed_to ON tasks
FOR EACH ROW EXECUTE FUNCTION hopper_episode();
