//! The instance registry (`hopper_instances`), kept in the root instance's database.

use super::rows::{INSTANCE_COLUMNS, InstanceRow};
use super::{Store, StoreResult, on_reader, on_writer};
use crate::config::redact_json;
use crate::domain::{Instance, InstanceFilter, InstanceId, InstanceStatus, Millis, Scope};

/// The second net on the way out: whatever an older row or a hand-edited database holds, what
/// a key name or a URL marks as secret is not shown.
fn redacted(mut instance: Instance) -> Instance {
    redact_json(&mut instance.config);
    instance
}

/// An instance about to be registered.
#[derive(Debug, Clone)]
pub struct NewInstance<'a> {
    pub id: &'a InstanceId,
    pub scope: Scope,
    pub parent: Option<&'a InstanceId>,
    pub config: &'a serde_json::Value,
    pub metadata: &'a serde_json::Value,
    /// The process whose memory holds the instance's tasks (in-memory instances only).
    pub owner: Option<&'a str>,
    pub now: Millis,
}

impl Store {
    /// Registers an instance unless it exists; returns the stored row and whether it was new.
    pub async fn register_instance(&self, new: &NewInstance<'_>) -> StoreResult<(Instance, bool)> {
        const Q: &str = "INSERT INTO hopper_instances (instance_id, scope, parent_instance_id, \
            config, status, metadata, created_at, updated_at, owner) VALUES ($1, $2, $3, $4, 'running', $5, $6, $6, $7) \
            ON CONFLICT (instance_id) DO NOTHING";
        let n = on_writer!(self, c => Ok(sqlx::query(Q)
            .bind(new.id.as_str())
            .bind(new.scope.as_str())
            .bind(new.parent.map(|p| p.as_str().to_owned()))
            .bind(new.config.to_string())
            .bind(new.metadata.to_string())
            .bind(new.now)
            .bind(new.owner)
            .execute(&mut *c)
            .await?
            .rows_affected()))?;
        if new.parent.is_none() {
            self.scrub_registry().await?;
        }
        let inst = self.get_instance(new.id).await?.ok_or_else(|| {
            super::StoreError::Corrupt(format!("instance {} vanished after insert", new.id))
        })?;
        Ok((inst, n == 1))
    }

    pub async fn get_instance(&self, id: &InstanceId) -> StoreResult<Option<Instance>> {
        let q = format!("SELECT {INSTANCE_COLUMNS} FROM hopper_instances WHERE instance_id = $1");
        let row: Option<InstanceRow> =
            on_reader!(self, p => sqlx::query_as(&q).bind(id.as_str()).fetch_optional(p).await?);
        row.map(|r| Instance::try_from(r).map(redacted)).transpose()
    }

    pub async fn list_instances(&self, filter: &InstanceFilter) -> StoreResult<Vec<Instance>> {
        let q = format!(
            "SELECT {INSTANCE_COLUMNS} FROM hopper_instances \
             WHERE (CAST($1 AS TEXT) IS NULL OR scope = $1) \
             AND (CAST($2 AS TEXT) IS NULL OR parent_instance_id = $2) \
             AND ($3 OR status = 'running') ORDER BY created_at, instance_id"
        );
        let rows: Vec<InstanceRow> = on_reader!(self, p => sqlx::query_as(&q)
            .bind(filter.scope.map(|s| s.as_str()))
            .bind(filter.parent.as_ref().map(|p| p.as_str().to_owned()))
            .bind(filter.include_archived)
            .fetch_all(p)
            .await?);
        rows.into_iter()
            .map(|r| Instance::try_from(r).map(redacted))
            .collect()
    }

    /// Rows written before configurations were redacted at registration still hold secrets in
    /// clear. The root registers once per start-up, so that is when they are rewritten.
    async fn scrub_registry(&self) -> StoreResult<()> {
        const ALL: &str = "SELECT instance_id, config FROM hopper_instances";
        // Only where the row still holds what was read: a concurrent write is not undone.
        const Q: &str =
            "UPDATE hopper_instances SET config = $2 WHERE instance_id = $1 AND config = $3";
        on_writer!(self, c => {
            let rows: Vec<(String, String)> = sqlx::query_as(ALL).fetch_all(&mut *c).await?;
            for (id, text) in rows {
                let Ok(mut config) = serde_json::from_str::<serde_json::Value>(&text) else {
                    continue;
                };
                if !redact_json(&mut config) {
                    continue;
                }
                sqlx::query(Q)
                    .bind(&id)
                    .bind(config.to_string())
                    .bind(&text)
                    .execute(&mut *c)
                    .await?;
            }
            Ok(())
        })
    }

    pub async fn set_instance_status(
        &self,
        id: &InstanceId,
        status: InstanceStatus,
        summary: Option<&serde_json::Value>,
        now: Millis,
    ) -> StoreResult<bool> {
        const Q: &str = "UPDATE hopper_instances SET status = $2, summary = COALESCE($3, summary), \
                         updated_at = $4 WHERE instance_id = $1";
        let n = on_writer!(self, c => Ok(sqlx::query(Q)
            .bind(id.as_str())
            .bind(status.as_str())
            .bind(summary.map(|s| s.to_string()))
            .bind(now)
            .execute(&mut *c)
            .await?
            .rows_affected()))?;
        Ok(n == 1)
    }
}

impl Store {
    /// Records that this process is alive.
    pub async fn process_heartbeat(&self, boot_id: &str, now: Millis) -> StoreResult<()> {
        const Q: &str = "INSERT INTO hopper_processes (boot_id, started_at, heartbeat_at) VALUES ($1, $2, $2) \
                         ON CONFLICT (boot_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at";
        on_writer!(self, c => {
            sqlx::query(Q).bind(boot_id).bind(now).execute(&mut *c).await?;
            Ok(())
        })
    }

    pub async fn process_gone(&self, boot_id: &str) -> StoreResult<()> {
        const Q: &str = "DELETE FROM hopper_processes WHERE boot_id = $1";
        on_writer!(self, c => {
            sqlx::query(Q).bind(boot_id).execute(&mut *c).await?;
            Ok(())
        })
    }

    /// True when `id` is an in-memory instance whose owning process heart-beat since `since`.
    pub async fn owner_alive(&self, id: &InstanceId, since: Millis) -> StoreResult<bool> {
        const Q: &str = "SELECT COUNT(*) FROM hopper_instances i JOIN hopper_processes p ON p.boot_id = i.owner \
                         WHERE i.instance_id = $1 AND p.heartbeat_at >= $2";
        let n: i64 = on_reader!(self, p => sqlx::query_scalar(Q).bind(id.as_str()).bind(since).fetch_one(p).await?);
        Ok(n > 0)
    }
}
