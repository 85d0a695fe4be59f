-- Full-text indexing of episodes leaves the commit that records them, as on SQLite (its
-- migration 17): the trigger on `tasks` writes the row with `search` NULL, and
-- `Store::index_episodes` fills it later, in batches (the indexer, which waits while ingest is
-- busy, and every search first, so a search never misses an episode). The generated column
-- and its GIN entry cost a burst of webhooks a fifth of its throughput (`cargo bench --bench
-- inbound`, PostgreSQL, 64 clients, interleaved: episodes on 4,382 / 4,480, off 5,581 / 5,330
-- deliveries/s); in psql a plain episode row is 3.9 µs, its tsvector 9-11 µs more and its GIN
-- entry 10 µs more (the pending list only moves that to its clean-up).
--
-- Which episodes wait is the partial index below (new rows land on its rightmost leaf); unlike
-- SQLite's single writer, commits here finish out of `seq` order, so a high-water mark could
-- pass over an episode whose transaction had not committed yet.
CREATE FUNCTION hopper_episode_search(title TEXT, tags TEXT, body TEXT, notes TEXT)
RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    -- The title weighs most, then tags, then the text and notes.
    SELECT setweight(to_tsvector('simple', title), 'A')
        || setweight(to_tsvector('simple', tags), 'B')
        || setweight(to_tsvector('simple', body || ' ' || coalesce(notes, '')), 'C')
$$;

ALTER TABLE episodes DROP COLUMN search;
ALTER TABLE episodes ADD COLUMN search tsvector;
UPDATE episodes SET search = hopper_episode_search(title, tags, text, notes);
-- Partial: a NULL would still be a GIN entry.
CREATE INDEX ix_episodes_search ON episodes USING GIN (search) WHERE search IS NOT NULL;
CREATE INDEX ix_episodes_unindexed ON episodes (seq) WHERE search IS NULL;
