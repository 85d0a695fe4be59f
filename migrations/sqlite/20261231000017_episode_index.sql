-- Full-text indexing of episodes leaves the commit that records them. The episode row is still
-- written by the trigger on `tasks`, in the same transaction as the change; its FTS5 entry is
-- added later, in batches, by `Store::index_episodes` (the indexer every 200 ms, and every
-- search first, so a search never misses an episode). Indexing inside the commit cost ingest
-- a fifth of its throughput (`cargo bench --bench inbound`, SQLite, 64 clients, one run each
-- interleaved: episodes off 4,330 / 3,842, episode rows without FTS 3,936 / 4,156, with FTS
-- 3,194 / 3,261 deliveries/s; 4 KB more written per delivery): the row itself is cheap, FTS5
-- per small group-commit batch is not (each commit flushes a small segment that is merged
-- again and again).
--
-- `upto`: every episode with `seq <= upto` is in the index, none above it. SQLite has one
-- writer, and `seq` is assigned inside the write transaction, so episodes commit in `seq`
-- order and nothing can appear below `upto` later.
CREATE TABLE episode_index (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    upto BIGINT NOT NULL
);
INSERT INTO episode_index (id, upto) SELECT 1, coalesce(max(seq), 0) FROM episodes;

DROP TRIGGER tr_episodes_fts_insert;

-- Moving `upto` indexes the episodes it passes over, in the same statement: the index and the
-- mark cannot disagree, whatever fails.
CREATE TRIGGER tr_episode_index_advance AFTER UPDATE OF upto ON episode_index
WHEN NEW.upto > OLD.upto
BEGIN
    INSERT INTO episodes_fts (rowid, title, text, tags, notes)
    SELECT seq, title, text, tags, coalesce(notes, '') FROM episodes
    WHERE seq > OLD.upto AND seq <= NEW.upto;
END;

-- Only an indexed episode has an entry to take out (FTS5 must be told exactly what it holds).
DROP TRIGGER tr_episodes_fts_delete;
CREATE TRIGGER tr_episodes_fts_delete AFTER DELETE ON episodes
WHEN OLD.seq <= (SELECT upto FROM episode_index)
BEGIN
    INSERT INTO episodes_fts (episodes_fts, rowid, title, text, tags, notes)
    VALUES ('delete', OLD.seq, OLD.title, OLD.text, OLD.tags, coalesce(OLD.notes, ''));
END;
