//! Where the outbox triggers record: only in databases someone can hear from.
//!
//! Migration 12's triggers write a `task_outbox` row only while the database's one-row
//! `outbox_wanted` table is filled. Without an executor that has a webhook nobody reads those
//! rows, and every task write paid for one (measured on SQLite: +30% bytes written per inbound
//! webhook, 15-30% lower inbound/core bench throughput). So the flag is set in every open store
//! as soon as such an executor exists (registration, an update that adds a webhook or enables
//! one, before the change is answered: a task added once the answer is out records its event),
//! and in each store opened afterwards before anyone can write to it (`StoreSet::get`).
//!
//! **Set-only.** Nothing clears the flag. Clearing would race with another process registering
//! on the same PostgreSQL database (it sets the flag, we clear it after reading "no executor",
//! its executor then misses events), and a lost event is worse than a row written in vain. After
//! the last executor is removed the cost is the same as it was before the flag existed.
//!
//! **Other processes.** On PostgreSQL the flag lives in the shared database, so a registration in
//! one process is seen by every process's task writes at once. A process's own in-memory run
//! database cannot be reached that way: its dispatcher reads the root's executors on each idle
//! poll while its flag is unset (`refresh_outbox_wanted`).

use super::Engine;
use crate::domain::Executor;
use crate::error::Result;

impl Engine {
    /// Makes every store of this engine, open now or opened later, record outbox events.
    pub(crate) async fn want_outbox(&self) -> Result<()> {
        if !self.inner.stores.outbox_wanted() {
            tracing::info!("executor webhooks or reports: task events are recorded from now on");
        }
        Ok(self.inner.stores.want_outbox().await?)
    }

    /// `want_outbox` if `e` can receive deliveries.
    pub(crate) async fn want_outbox_for(&self, e: &Executor) -> Result<()> {
        if e.webhook_url.is_some() && e.enabled {
            self.want_outbox().await?;
        }
        Ok(())
    }

    /// Reads the root's executors and, if one has a webhook, makes every store record outbox
    /// events; answers whether they do. Called at start-up, by the dispatcher while the flag is
    /// unset (another process may have registered), and by tests and benchmarks that write
    /// executors with `Store::put_executor`.
    pub async fn refresh_outbox_wanted(&self) -> Result<bool> {
        if self.inner.stores.outbox_wanted() {
            return Ok(true);
        }
        if self.inner.registry.has_webhook_executor().await? {
            self.want_outbox().await?;
            return Ok(true);
        }
        Ok(false)
    }
}
