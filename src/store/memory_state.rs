//! `memory_state` (migration 16): consolidation's profile, watermark and lease per instance.

use super::{Store, StoreResult, on_reader, on_writer};
use crate::domain::Millis;

/// What the last successful consolidation left.
#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
pub struct MemoryState {
    pub profile: Option<String>,
    pub watermark: i64,
    pub last_commit: Option<String>,
    pub last_run_at: Option<Millis>,
}

impl Store {
    pub async fn memory_state(&self, instance: &str) -> StoreResult<MemoryState> {
        const Q: &str = "SELECT profile, watermark, last_commit, last_run_at FROM memory_state \
                         WHERE instance_id = $1";
        let row: Option<MemoryState> =
            on_reader!(self, p => sqlx::query_as(Q).bind(instance).fetch_optional(p).await?);
        Ok(row.unwrap_or_default())
    }

    /// Takes the consolidation lease of `instance` for `owner` until `until`: true if it was
    /// free, ran out, or is `owner`'s already. One conditional write, so two servers racing
    /// for it cannot both win.
    pub async fn take_memory_lease(
        &self,
        instance: &str,
        owner: &str,
        now: Millis,
        until: Millis,
    ) -> StoreResult<bool> {
        const ROW: &str =
            "INSERT INTO memory_state (instance_id) VALUES ($1) ON CONFLICT DO NOTHING";
        const TAKE: &str = "UPDATE memory_state SET lease_owner = $2, lease_until = $4 \
            WHERE instance_id = $1 AND (lease_until IS NULL OR lease_until < $3 OR lease_owner = $2)";
        let n = on_writer!(self, c => {
            sqlx::query(ROW).bind(instance).execute(&mut *c).await?;
            Ok(sqlx::query(TAKE)
                .bind(instance)
                .bind(owner)
                .bind(now)
                .bind(until)
                .execute(&mut *c)
                .await?
                .rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Gives the lease back without changing anything else (a failed or dry run).
    pub async fn release_memory_lease(&self, instance: &str, owner: &str) -> StoreResult<()> {
        const Q: &str = "UPDATE memory_state SET lease_owner = NULL, lease_until = NULL \
                         WHERE instance_id = $1 AND lease_owner = $2";
        on_writer!(self, c => {
            sqlx::query(Q).bind(instance).bind(owner).execute(&mut *c).await?;
            Ok(())
        })
    }

    /// Moves the watermark with the profile committed, and gives the lease back, in one
    /// write; false if `owner` no longer held the lease (another server took it over).
    pub async fn save_memory_state(
        &self,
        instance: &str,
        owner: &str,
        state: &MemoryState,
    ) -> StoreResult<bool> {
        const Q: &str = "UPDATE memory_state SET profile = $3, watermark = $4, last_commit = $5, \
            last_run_at = $6, lease_owner = NULL, lease_until = NULL \
            WHERE instance_id = $1 AND lease_owner = $2";
        let n = on_writer!(self, c => Ok(sqlx::query(Q)
            .bind(instance)
            .bind(owner)
            .bind(&state.profile)
            .bind(state.watermark)
            .bind(&state.last_commit)
            .bind(state.last_run_at)
            .execute(&mut *c)
            .await?
            .rows_affected()))?;
        Ok(n == 1)
    }
}
