//! Closing the databases of idle projects.
//!
//! With a database file per project (the shipped layout) every open project costs about seven
//! threads and thirteen file handles (group committer, fsync thread, checkpointer, pooled
//! connections; measured with 100 projects: 703 threads, 1,319 handles). Project names come
//! from outside, so most projects may see one task a month: their files are closed once they
//! are idle and reopened on the next use, through the same registry lookup that finds a
//! project another process created.

use std::sync::Arc;

use super::{Engine, Node};
use crate::domain::{Scope, TaskStatus, now_millis};
use crate::error::Result;
use crate::store::StoreKey;

impl Engine {
    /// Closes the files of projects unused for `child_instances.idle_close_seconds`; returns how
    /// many were closed. Run by the sweeper.
    pub async fn close_idle_projects(&self) -> Result<usize> {
        let secs = self.inner.configs.root.child_instances.idle_close_seconds;
        if secs == 0 {
            return Ok(0);
        }
        self.close_projects_idle_for(secs.saturating_mul(1000) as i64)
            .await
    }

    /// As `close_idle_projects`, with the idle time given (tests use 0).
    #[doc(hidden)]
    pub async fn close_projects_idle_for(&self, idle_ms: i64) -> Result<usize> {
        let cutoff = now_millis() - idle_ms;
        let candidates: Vec<Arc<Node>> = self
            .inner
            .nodes
            .read()
            .await
            .values()
            .filter(|n| {
                n.scope() == Scope::Project
                    && matches!(n.store.key(), StoreKey::SqliteFile(_))
                    && n.store.key() != self.inner.registry.key()
                    && n.last_used() <= cutoff
            })
            .cloned()
            .collect();
        let mut closed = 0;
        for node in candidates {
            if self.may_close(&node).await? && self.close_project(node, cutoff).await {
                closed += 1;
            }
        }
        if closed > 0 {
            tracing::info!(closed, "idle project databases closed");
        }
        Ok(closed)
    }

    /// Work in flight pins a project: a claim (its lease is swept in that file), a delegation
    /// (a run reports back into it), a live child, or outbox events still to dispatch.
    async fn may_close(&self, node: &Node) -> Result<bool> {
        if !self.children_of(node.id()).await.is_empty() {
            return Ok(false);
        }
        // Outbox events not yet fanned out: the dispatcher reads only open stores.
        if node.store.outbox_pending().await? {
            return Ok(false);
        }
        let busy = node
            .store
            .status_counts(node.id())
            .await?
            .into_iter()
            .any(|(status, n)| {
                n > 0
                    && (status == TaskStatus::Claimed.as_str()
                        || status == TaskStatus::Routed.as_str())
            });
        Ok(!busy)
    }

    async fn close_project(&self, node: Arc<Node>, cutoff: i64) -> bool {
        let key = node.store.key().clone();
        let mut map = self.inner.nodes.write().await;
        // Under the write lock nobody can look it up: recheck that it is still idle, that no
        // one holds it (the map and `node` are the two handles), and that no other instance
        // shares the file.
        let shared = map
            .values()
            .any(|n| n.id() != node.id() && n.store.key() == &key);
        if node.last_used() > cutoff || Arc::strong_count(&node) > 2 || shared {
            return false;
        }
        map.park(node.id());
        self.inner.stores.forget(&key).await;
        true
    }
}
