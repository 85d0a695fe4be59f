//! Memory search: episodes ranked by full-text match (`store/episodes.rs`).

use super::Engine;
use crate::domain::{InstanceId, MemoryHit, MemoryQuery};
use crate::error::{HopperError, Result};

impl Engine {
    /// The episodes of an instance (the global one by default) that best match `q.q`.
    pub async fn search_memory(&self, q: &MemoryQuery) -> Result<Vec<MemoryHit>> {
        if q.q.trim().is_empty() {
            return Err(HopperError::Invalid("q: say what to look for".into()));
        }
        if q.q.len() > 1_000 {
            return Err(HopperError::Invalid("q: at most 1,000 bytes".into()));
        }
        let limit = q.limit.unwrap_or(20).clamp(1, 100);
        let store = match &q.instance {
            Some(id) => {
                let id = InstanceId::parse(id)
                    .map_err(|e| HopperError::Invalid(format!("instance: {e}")))?;
                self.node(&id).await?.store.clone()
            }
            None => self.registry_store().clone(),
        };
        let hits = store.search_episodes(&q.q, limit).await?;
        Ok(hits
            .into_iter()
            .map(|h| MemoryHit {
                episode: h.episode,
                snippet: h.snippet,
                score: h.score,
            })
            .collect())
    }
}
