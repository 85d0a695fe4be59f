-- Full-text indexing of episodes leaves the commit that records them, as on SQLite (see the
-- SQLite migration of the same name for the figures). The episode row is still written by the
-- trigger on `tasks`, in the same transaction as the change; its `tsvector` (three
-- `to_tsvector` calls over up to 2 KB of text, then a GIN entry per word) is computed later,
-- in batches, by `Store::index_episodes` (the indexer every 200 ms, and every search first).
--
-- Not a watermark as on SQLite: here transactions commit concurrently, so a lower `seq` can
-- become visible after a higher one was indexed. A queue of the episodes not yet indexed is
-- exact whatever the commit order: a trigger adds each new episode's `seq`, and the indexer
-- takes rows off it and writes their search entries in one statement.
CREATE TABLE episode_search (
    seq    BIGINT PRIMARY KEY,
    search tsvector NOT NULL
);

CREATE TABLE episode_unindexed (
    seq BIGINT PRIMARY KEY
);

INSERT INTO episode_search (seq, search) SELECT seq, search FROM episodes;
ALTER TABLE episodes DROP COLUMN search;
CREATE INDEX ix_episode_search ON episode_search USING GIN (search);

CREATE FUNCTION hopper_episode_unindexed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO episode_unindexed (seq) VALUES (NEW.seq);
    RETURN NULL;
END;
$$;

CREATE TRIGGER tr_episode_unindexed AFTER INSERT ON episodes
FOR EACH ROW EXECUTE FUNCTION hopper_episode_unindexed();
