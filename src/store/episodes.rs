//! `episodes` (migration 15): read and searched here; written by triggers on `tasks` while
//! `memory_wanted` has its row.
//!
//! The full-text index is filled after the commit that records an episode, in batches
//! ([`Store::index_episodes`]; SQLite's migration 17 and PostgreSQL's 19 say why), and a
//! search first indexes what is pending, so it never misses one. On SQLite a mark says how far
//! the FTS5 table goes; on PostgreSQL the `search` column is NULL until indexed (commits end
//! out of `seq` order there, so a mark could pass over one). A queue table of unindexed
//! episodes instead, tried first there, made ingest slower still (its drains scanned the
//! queue's dead tuples).

use super::{Store, StoreResult, on_reader, on_writer};
use crate::memory::{Episode, EpisodeKind};

const COLUMNS: &str = "e.seq, e.instance_id, e.task_id, e.kind, e.at, e.project, e.from_project, \
    e.decided_by, e.confidence, e.title, e.text, e.tags, e.quality, e.routing_correct, e.notes, \
    e.duration_ms";

/// Matches ranked per search, newest first.
const WINDOW: i64 = 500;
/// Episodes a search indexes per statement before it reads, in small statements for the same
/// reason as the indexer (`engine/indexer.rs`): the writer's other callers go between them.
const CATCH_UP_BATCH: i64 = 1_000;
/// At most this many (the indexer keeps the backlog to a fraction of one).
const CATCH_UP_BATCHES: usize = 100;

#[derive(sqlx::FromRow)]
struct EpisodeRow {
    seq: i64,
    instance_id: String,
    task_id: String,
    kind: String,
    at: i64,
    project: Option<String>,
    from_project: Option<String>,
    decided_by: Option<String>,
    confidence: Option<f64>,
    title: String,
    text: String,
    tags: String,
    quality: Option<f64>,
    routing_correct: Option<bool>,
    notes: Option<String>,
    duration_ms: Option<i64>,
}

impl From<EpisodeRow> for Episode {
    fn from(r: EpisodeRow) -> Self {
        let kind = match r.kind.as_str() {
            "corrected" => EpisodeKind::Corrected,
            "completed" => EpisodeKind::Completed,
            "failed" => EpisodeKind::Failed,
            _ => EpisodeKind::Routed,
        };
        Episode {
            seq: r.seq,
            instance_id: r.instance_id,
            task_id: r.task_id,
            kind,
            at: r.at,
            project: r.project,
            from_project: r.from_project,
            decided_by: r.decided_by,
            confidence: r.confidence,
            title: r.title,
            text: r.text,
            tags: serde_json::from_str(&r.tags).unwrap_or_default(),
            quality: r.quality,
            routing_correct: r.routing_correct,
            notes: r.notes,
            duration_ms: r.duration_ms,
        }
    }
}

#[derive(sqlx::FromRow)]
struct HitRow {
    #[sqlx(flatten)]
    episode: EpisodeRow,
    snippet: String,
    score: f64,
}

/// A search result: the episode, a snippet with the matches in `[…]`, and its score (higher is
/// better).
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeHit {
    pub episode: Episode,
    pub snippet: String,
    pub score: f64,
}

/// The words of a query, for either dialect's full-text syntax: letters and digits only, so
/// nothing a user types is read as an operator.
fn words(query: &str) -> Vec<String> {
    query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .take(32)
        .collect()
}

impl Store {
    /// Lets the episode triggers record here from now on (or stops them). Idempotent.
    pub async fn want_memory(&self, on: bool) -> StoreResult<()> {
        let q = match on {
            true => "INSERT INTO memory_wanted (id) VALUES (1) ON CONFLICT DO NOTHING",
            false => "DELETE FROM memory_wanted",
        };
        on_writer!(self, c => {
            sqlx::query(q).execute(&mut *c).await?;
            Ok(())
        })
    }

    /// Adds up to `limit` episodes that are not yet in the full-text index to it; whether
    /// there were any. Not behind the durability barrier: the index is derived, and a lost
    /// batch loses its mark (or its `search` values) with it, so it is simply done again.
    pub async fn index_episodes(&self, limit: i64) -> StoreResult<bool> {
        const PENDING: &str = "SELECT EXISTS (SELECT 1 FROM episodes \
                               WHERE seq > (SELECT upto FROM episode_index))";
        const ADVANCE: &str = "UPDATE episode_index SET upto = (SELECT max(seq) FROM \
            (SELECT seq FROM episodes WHERE seq > episode_index.upto ORDER BY seq LIMIT $1)) \
            WHERE EXISTS (SELECT 1 FROM episodes WHERE seq > episode_index.upto)";
        // SKIP LOCKED: concurrent indexers (the indexer and searches, several servers) take
        // disjoint batches instead of waiting on each other's rows. The batch is a CTE, read
        // once: as an `IN (subquery)` the planner may run it again for each row, and each run
        // locks the next rows (those this statement updated are skipped), indexing them all.
        const FILL: &str = "WITH batch AS (SELECT seq FROM episodes WHERE search IS NULL \
            ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED) \
            UPDATE episodes e SET search = hopper_episode_search(e.title, e.tags, e.text, e.notes) \
            FROM batch WHERE e.seq = batch.seq";
        match &self.backend {
            super::Backend::Sqlite(b) => {
                // A reader answers "nothing to do" without queueing for the writer.
                let pending: bool = sqlx::query_scalar(PENDING).fetch_one(b.reader()).await?;
                if !pending {
                    return Ok(false);
                }
                b.write_unsynced(|c, _| {
                    Box::pin(async move {
                        let n = sqlx::query(ADVANCE).bind(limit).execute(&mut *c).await?;
                        Ok(n.rows_affected() > 0)
                    })
                })
                .await
            }
            super::Backend::Postgres(b) => {
                let n = sqlx::query(FILL).bind(limit).execute(b.pool()).await?;
                Ok(n.rows_affected() > 0)
            }
        }
    }

    /// How many episodes wait for the full-text index, at most: read off the `seq`s at both
    /// ends of the backlog, so it costs the same whatever the backlog (counting rows took the
    /// indexer ~1 ms per round at 25,000 pending, 5 rounds a second through a burst). Exact on
    /// SQLite, where `seq` is the rowid (no gaps: nothing deletes episodes); on PostgreSQL a
    /// sequence's gaps (rolled-back inserts) and batches indexed out of order count too.
    pub async fn unindexed_episodes(&self) -> StoreResult<i64> {
        let n: i64 =
            match &self.backend {
                super::Backend::Sqlite(b) => sqlx::query_scalar(
                    "SELECT COALESCE(MAX(seq), 0) - (SELECT upto FROM episode_index) FROM episodes",
                )
                .fetch_one(b.reader())
                .await?,
                // Both ends come off `ix_episodes_unindexed` (seq, partial on `search IS NULL`).
                super::Backend::Postgres(b) => {
                    sqlx::query_scalar(
                        "SELECT COALESCE(MAX(seq) - MIN(seq) + 1, 0)::int8 FROM episodes \
                     WHERE search IS NULL",
                    )
                    .fetch_one(b.pool())
                    .await?
                }
            };
        Ok(n.max(0))
    }

    /// The newest episode's `seq` (0 with none): how fast episodes are being recorded.
    pub async fn latest_episode_seq(&self) -> StoreResult<i64> {
        let n: i64 = on_reader!(self, p => sqlx::query_scalar(
            "SELECT COALESCE(MAX(seq), 0) FROM episodes",
        )
        .fetch_one(p)
        .await?);
        Ok(n)
    }

    /// Indexes what is pending (bounded), so that a search sees every episode recorded.
    async fn catch_up_index(&self) -> StoreResult<()> {
        for _ in 0..CATCH_UP_BATCHES {
            if !self.index_episodes(CATCH_UP_BATCH).await? {
                break;
            }
        }
        Ok(())
    }

    /// How many episodes there are after `seq` (what a consolidation run has to read).
    pub async fn count_episodes_after(&self, seq: i64) -> StoreResult<i64> {
        let n: i64 = on_reader!(self, p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM episodes WHERE seq > $1",
        )
        .bind(seq)
        .fetch_one(p)
        .await?);
        Ok(n)
    }

    /// Episodes after `seq`, oldest first.
    pub async fn episodes_after(&self, seq: i64, limit: i64) -> StoreResult<Vec<Episode>> {
        let q =
            format!("SELECT {COLUMNS} FROM episodes e WHERE e.seq > $1 ORDER BY e.seq LIMIT $2");
        let rows: Vec<EpisodeRow> = on_reader!(self, p => sqlx::query_as(&q)
            .bind(seq)
            .bind(limit)
            .fetch_all(p)
            .await?);
        Ok(rows.into_iter().map(Episode::from).collect())
    }

    /// The episodes that best match `query` (any of its words; ranked by BM25 on SQLite and
    /// `ts_rank` on PostgreSQL, the title weighing most), among the [`WINDOW`] most recent
    /// that match at all: ranking every match first made a common word cost the whole table
    /// (100,000 episodes, 30-word vocabulary: p50 62 ms, p99 111 ms on SQLite), while the
    /// newest matches come straight off the index in rowid order.
    pub async fn search_episodes(&self, query: &str, limit: i64) -> StoreResult<Vec<EpisodeHit>> {
        let words = words(query);
        if words.is_empty() {
            return Ok(Vec::new());
        }
        self.catch_up_index().await?;
        let rows: Vec<HitRow> = match &self.backend {
            super::Backend::Sqlite(b) => {
                let q = format!(
                    "SELECT * FROM (SELECT {COLUMNS}, \
                     snippet(episodes_fts, -1, '[', ']', '…', 12) AS snippet, \
                     -bm25(episodes_fts, 4.0, 1.0, 2.0, 1.0) AS score \
                     FROM episodes_fts JOIN episodes e ON e.seq = episodes_fts.rowid \
                     WHERE episodes_fts MATCH $1 ORDER BY episodes_fts.rowid DESC LIMIT {WINDOW}) \
                     ORDER BY score DESC, seq DESC LIMIT $2"
                );
                let fts: Vec<String> = words.iter().map(|w| format!("\"{w}\"")).collect();
                sqlx::query_as(&q)
                    .bind(fts.join(" OR "))
                    .bind(limit)
                    .fetch_all(b.reader())
                    .await?
            }
            super::Backend::Postgres(b) => {
                let q = format!(
                    "SELECT {COLUMNS}, ts_headline('simple', e.title || ' ' || e.text, q, \
                     'StartSel=[, StopSel=], MaxWords=24, MinWords=8') AS snippet, \
                     ts_rank(e.search, q)::float8 AS score \
                     FROM (SELECT * FROM episodes, to_tsquery('simple', $1) q0 \
                           WHERE search IS NOT NULL AND search @@ q0 ORDER BY seq DESC LIMIT {WINDOW}) e, \
                          to_tsquery('simple', $1) q \
                     ORDER BY score DESC, e.seq DESC LIMIT $2"
                );
                sqlx::query_as(&q)
                    .bind(words.join(" | "))
                    .bind(limit)
                    .fetch_all(b.pool())
                    .await?
            }
        };
        Ok(rows
            .into_iter()
            .map(|r| EpisodeHit {
                episode: r.episode.into(),
                snippet: r.snippet,
                score: r.score,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_words_carry_no_operators() {
        assert_eq!(
            super::words("auth* OR \"bypass\" -mcp (gate)"),
            ["auth", "or", "bypass", "mcp", "gate"]
        );
        assert!(super::words("*** ---").is_empty());
    }
}
