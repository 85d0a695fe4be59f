//! What memory search takes and answers (REST, CLI, the service API).

use serde::{Deserialize, Serialize};

use crate::memory::Episode;

/// `GET /v1/memory/search?q=…&instance=…&limit=…`
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
pub struct MemoryQuery {
    /// Words to look for (title, description, tags, feedback notes).
    pub q: String,
    /// The instance whose episodes to search (the global instance by default).
    pub instance: Option<String>,
    /// At most this many (20 by default, 100 at most).
    pub limit: Option<i64>,
}

/// One ranked episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemoryHit {
    #[schema(value_type = Object)]
    pub episode: Episode,
    /// The matching text, matches in `[…]`.
    pub snippet: String,
    /// Higher is better (BM25 on SQLite, `ts_rank` on PostgreSQL: not comparable across them).
    pub score: f64,
}
