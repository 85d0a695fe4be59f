//! `sync_links`: which task each issue of a synced repository is (`src/sync`), in the root
//! store, and the one task change sync makes besides finishing: tags and priority from labels.

use sqlx::Connection;

use super::events::append_event;
use super::rows::EventRecord;
use super::{Store, StoreResult, on_reader, on_writer};
use crate::domain::{InstanceId, Millis, TaskId};

const COLUMNS: &str = "provider, repository, number, task_id, project, url, handle, origin, \
                       pushed_state, created_at, updated_at";

/// One issue ↔ task pair. `repository` is stored lower-case: GitHub's names are not case
/// sensitive, and a webhook may spell one differently from the config.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SyncLink {
    pub provider: String,
    pub repository: String,
    pub number: String,
    pub task_id: String,
    pub project: String,
    pub url: String,
    /// The reply handle reports to the issue use (JSON text).
    pub handle: Option<String>,
    /// `export` (Hopper opened the issue) or `import` (the issue made the task).
    pub origin: String,
    /// The issue state Hopper last wrote (`closed`), if any.
    pub pushed_state: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl Store {
    /// Records a pair; false if the issue or the task is paired already (the first stays).
    pub async fn insert_sync_link(&self, l: &SyncLink) -> StoreResult<bool> {
        let q = format!(
            "INSERT INTO sync_links ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT DO NOTHING"
        );
        let n = on_writer!(self, c => Ok(sqlx::query(&q)
            .bind(&l.provider)
            .bind(l.repository.to_ascii_lowercase())
            .bind(&l.number)
            .bind(&l.task_id)
            .bind(&l.project)
            .bind(&l.url)
            .bind(&l.handle)
            .bind(&l.origin)
            .bind(&l.pushed_state)
            .bind(l.created_at)
            .bind(l.updated_at)
            .execute(&mut *c)
            .await?
            .rows_affected()))?;
        Ok(n == 1)
    }

    pub async fn sync_link_by_issue(
        &self,
        provider: &str,
        repository: &str,
        number: &str,
    ) -> StoreResult<Option<SyncLink>> {
        let q = format!(
            "SELECT {COLUMNS} FROM sync_links WHERE provider = $1 AND repository = $2 \
             AND number = $3"
        );
        let repository = repository.to_ascii_lowercase();
        Ok(on_reader!(self, p => sqlx::query_as(&q)
            .bind(provider)
            .bind(&repository)
            .bind(number)
            .fetch_optional(p)
            .await?))
    }

    pub async fn sync_link_by_task(&self, task: &str) -> StoreResult<Option<SyncLink>> {
        let q = format!("SELECT {COLUMNS} FROM sync_links WHERE task_id = $1");
        Ok(on_reader!(self, p => sqlx::query_as(&q).bind(task).fetch_optional(p).await?))
    }

    /// Points an issue at another task (a reopened issue's new task) and forgets what Hopper
    /// last wrote to it.
    pub async fn relink_sync(&self, l: &SyncLink, task: &str, now: Millis) -> StoreResult<()> {
        const Q: &str = "UPDATE sync_links SET task_id = $4, pushed_state = NULL, updated_at = $5 \
                         WHERE provider = $1 AND repository = $2 AND number = $3";
        on_writer!(self, c => {
            sqlx::query(Q)
                .bind(&l.provider)
                .bind(&l.repository)
                .bind(&l.number)
                .bind(task)
                .bind(now)
                .execute(&mut *c)
                .await?;
            Ok(())
        })
    }

    /// Notes the state Hopper wrote to the issue of `task` (`closed`).
    pub async fn set_sync_pushed(&self, task: &str, state: &str, now: Millis) -> StoreResult<()> {
        const Q: &str =
            "UPDATE sync_links SET pushed_state = $2, updated_at = $3 WHERE task_id = $1";
        on_writer!(self, c => {
            sqlx::query(Q).bind(task).bind(state).bind(now).execute(&mut *c).await?;
            Ok(())
        })
    }

    /// Sets a task's tags and priority, with `event` in its history, in one transaction; false
    /// if there is no such task.
    pub async fn retag_task(
        &self,
        task: &TaskId,
        instance: &InstanceId,
        tags: &[String],
        priority: i64,
        event: &EventRecord,
        now: Millis,
    ) -> StoreResult<bool> {
        const Q: &str = "UPDATE tasks SET tags = $2, priority = $3, updated_at = $4 WHERE id = $1";
        let tags = serde_json::to_string(tags).unwrap_or_else(|_| "[]".into());
        on_writer!(self, c => {
            let mut tx = c.begin().await?;
            let n = sqlx::query(Q)
                .bind(task.as_str())
                .bind(&tags)
                .bind(priority)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 1 {
                append_event!(&mut *tx, task, instance, now, event)?;
            }
            tx.commit().await?;
            Ok(n == 1)
        })
    }
}
