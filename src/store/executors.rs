//! The executor registry (`executors`) and its history (`executor_events`), kept in the root
//! instance's database beside the instance registry. Every write here is rare (registration,
//! an admin's change), so all of them take `on_writer!` and are durable on return.

use sqlx::Connection;

use super::rows::{
    EXECUTOR_COLUMNS, EXECUTOR_EVENT_COLUMNS, ExecutorEvent, ExecutorEventRow, ExecutorRow,
    INSERT_EXECUTOR, UPDATE_EXECUTOR, to_json,
};
use super::{Store, StoreResult, on_reader, on_writer};
use crate::domain::{Executor, ExecutorId, Millis};

/// Which executors a listing shows.
#[derive(Debug, Clone, Default)]
pub struct ExecutorFilter {
    /// Only those serving this instance (`hopper-sark`).
    pub project: Option<String>,
    pub enabled: Option<bool>,
}

impl Store {
    /// Registers `e` with its signing secret; false when the name is taken (the id is fresh,
    /// so the name is the only thing that can clash).
    pub async fn insert_executor(
        &self,
        e: &Executor,
        secret: &str,
        now: Millis,
    ) -> StoreResult<bool> {
        let n = on_writer!(self, c => Ok(sqlx::query(INSERT_EXECUTOR)
            .bind(e.id.as_str())
            .bind(&e.name)
            .bind(e.kind.as_str())
            .bind(e.project.as_str())
            .bind(to_json(&e.capabilities))
            .bind(e.webhook_url.as_deref())
            .bind(to_json(&e.events))
            .bind(e.auto_claim)
            .bind(e.velocity.as_deref())
            .bind(e.sla.as_ref().map(|s| s.to_string()))
            .bind(to_json(&e.priority_boost))
            .bind(e.config.to_string())
            .bind(secret)
            .bind(now)
            .execute(&mut *c)
            .await?
            .rows_affected()))?;
        Ok(n == 1)
    }

    /// An executor by id (`exec_…`) or by name.
    pub async fn get_executor(&self, id_or_name: &str) -> StoreResult<Option<Executor>> {
        let q = format!("SELECT {EXECUTOR_COLUMNS} FROM executors WHERE id = $1 OR name = $1");
        let row: Option<ExecutorRow> =
            on_reader!(self, p => sqlx::query_as(&q).bind(id_or_name).fetch_optional(p).await?);
        row.map(Executor::try_from).transpose()
    }

    pub async fn list_executors(&self, filter: &ExecutorFilter) -> StoreResult<Vec<Executor>> {
        let q = format!(
            "SELECT {EXECUTOR_COLUMNS} FROM executors \
             WHERE (CAST($1 AS TEXT) IS NULL OR project = $1) \
             AND (CAST($2 AS BOOLEAN) IS NULL OR enabled = $2) ORDER BY name"
        );
        let rows: Vec<ExecutorRow> = on_reader!(self, p => sqlx::query_as(&q)
            .bind(filter.project.as_deref())
            .bind(filter.enabled)
            .fetch_all(p)
            .await?);
        rows.into_iter().map(Executor::try_from).collect()
    }

    /// Writes every field an update may change (the engine merges a partial update first).
    pub async fn update_executor(&self, e: &Executor, now: Millis) -> StoreResult<bool> {
        let n = on_writer!(self, c => Ok(sqlx::query(UPDATE_EXECUTOR)
            .bind(e.id.as_str())
            .bind(to_json(&e.capabilities))
            .bind(e.webhook_url.as_deref())
            .bind(to_json(&e.events))
            .bind(e.auto_claim)
            .bind(e.velocity.as_deref())
            .bind(e.sla.as_ref().map(|s| s.to_string()))
            .bind(to_json(&e.priority_boost))
            .bind(e.config.to_string())
            .bind(e.kind.as_str())
            .bind(now)
            .execute(&mut *c)
            .await?
            .rows_affected()))?;
        Ok(n == 1)
    }

    /// Enables (clearing the reason and the run of failures) or disables with a reason, and
    /// records `executor.enabled` / `executor.disabled` in the same transaction when that
    /// changed the executor: an administrator's switch, a 410 and a long run of failures all
    /// come here. True if it changed; false if the executor is missing or already so.
    pub async fn set_executor_enabled(
        &self,
        id: &str,
        enabled: bool,
        reason: Option<&str>,
        now: Millis,
    ) -> StoreResult<bool> {
        const WAS: &str = "SELECT enabled FROM executors WHERE id = $1";
        const ENABLE: &str = "UPDATE executors SET enabled = TRUE, disabled_reason = NULL, \
            disabled_at = NULL, failing_since = NULL, updated_at = $2 WHERE id = $1";
        const DISABLE: &str = "UPDATE executors SET enabled = FALSE, disabled_reason = $3, \
            disabled_at = $2, updated_at = $2 WHERE id = $1 AND enabled";
        const EVENT: &str =
            "INSERT INTO executor_events (executor_id, at, kind, detail) VALUES ($1, $2, $3, $4)";
        let (kind, detail) = match enabled {
            true => ("executor.enabled", None),
            false => (
                "executor.disabled",
                Some(serde_json::json!({ "reason": reason }).to_string()),
            ),
        };
        on_writer!(self, c => {
            let mut tx = c.begin().await?;
            let was: Option<bool> = sqlx::query_scalar(WAS).bind(id).fetch_optional(&mut *tx).await?;
            let changed = match (was, enabled) {
                (None, _) => false,
                (Some(_), true) => {
                    // Enabling an enabled executor still starts its run of failures over.
                    sqlx::query(ENABLE).bind(id).bind(now).execute(&mut *tx).await?;
                    was == Some(false)
                }
                (Some(_), false) => {
                    let q = sqlx::query(DISABLE).bind(id).bind(now).bind(reason);
                    q.execute(&mut *tx).await?.rows_affected() > 0
                }
            };
            if changed {
                let q = sqlx::query(EVENT).bind(id).bind(now).bind(kind).bind(&detail);
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(changed)
        })
    }

    /// Replaces the signing secret; the old one keeps signing until `previous_until`.
    pub async fn rotate_executor_secret(
        &self,
        id: &ExecutorId,
        secret: &str,
        previous_until: Millis,
        now: Millis,
    ) -> StoreResult<bool> {
        const Q: &str = "UPDATE executors SET previous_secret = secret, \
            previous_secret_until = $3, secret = $2, updated_at = $4 WHERE id = $1";
        let n = on_writer!(self, c => Ok(sqlx::query(Q)
            .bind(id.as_str())
            .bind(secret)
            .bind(previous_until)
            .bind(now)
            .execute(&mut *c)
            .await?
            .rows_affected()))?;
        Ok(n == 1)
    }

    /// Removes an executor and revokes its tokens. The tokens go first: a crash in between
    /// leaves an executor nobody can act as, never a token acting as a missing executor.
    pub async fn delete_executor(&self, id: &ExecutorId, now: Millis) -> StoreResult<bool> {
        const REVOKE: &str = "UPDATE api_tokens SET revoked_at = $2 \
            WHERE executor_id = $1 AND revoked_at IS NULL";
        const DELETE: &str = "DELETE FROM executors WHERE id = $1";
        let n = on_writer!(self, c => {
            sqlx::query(REVOKE).bind(id.as_str()).bind(now).execute(&mut *c).await?;
            Ok(sqlx::query(DELETE).bind(id.as_str()).execute(&mut *c).await?.rows_affected())
        })?;
        Ok(n == 1)
    }

    pub async fn append_executor_event(
        &self,
        id: &ExecutorId,
        kind: &str,
        detail: Option<&serde_json::Value>,
        now: Millis,
    ) -> StoreResult<()> {
        const Q: &str =
            "INSERT INTO executor_events (executor_id, at, kind, detail) VALUES ($1, $2, $3, $4)";
        on_writer!(self, c => {
            sqlx::query(Q)
                .bind(id.as_str())
                .bind(now)
                .bind(kind)
                .bind(detail.map(|d| d.to_string()))
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }

    /// An executor's history, oldest first.
    pub async fn executor_events(&self, id: &ExecutorId) -> StoreResult<Vec<ExecutorEvent>> {
        let q = format!(
            "SELECT {EXECUTOR_EVENT_COLUMNS} FROM executor_events WHERE executor_id = $1 ORDER BY id"
        );
        let rows: Vec<ExecutorEventRow> =
            on_reader!(self, p => sqlx::query_as(&q).bind(id.as_str()).fetch_all(p).await?);
        rows.into_iter().map(ExecutorEvent::try_from).collect()
    }
}
