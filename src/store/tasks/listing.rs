//! Reading tasks in bulk and removing them: listings, counts, the end of a run, retention.

use super::sql::placeholders;
use crate::domain::{InstanceId, Millis, Task, TaskId, TaskStatus};
use crate::store::rows::{TASK_COLUMNS, TaskRow};
use crate::store::{Store, StoreResult, on_reader, on_writer};
use sqlx::Connection as _;

impl Store {
    pub async fn list_tasks(
        &self,
        instances: &[InstanceId],
        status: Option<TaskStatus>,
        after: Option<&TaskId>,
        limit: i64,
    ) -> StoreResult<Vec<Task>> {
        if instances.is_empty() {
            return Ok(Vec::new());
        }
        let status_clause = status
            .map(|s| format!("AND status = '{}'", s.as_str()))
            .unwrap_or_default();
        // Keyset pagination: the page after the last id seen (ids sort by creation time).
        let after_clause = after
            .map(|_| format!("AND id > ${}", instances.len() + 1))
            .unwrap_or_default();
        let q = if status.is_none() && limit <= 10_000 && instances.len() <= 8 {
            by_ranges(instances.len(), &after_clause, limit)
        } else {
            format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE instance_id IN ({}) {status_clause} \
                 {after_clause} ORDER BY id LIMIT {limit}",
                placeholders(1, instances.len())
            )
        };
        let rows: Vec<TaskRow> = on_reader!(self, p => {
            let mut query = sqlx::query_as(&q);
            for i in instances {
                query = query.bind(i.as_str());
            }
            if let Some(a) = after {
                query = query.bind(a.as_str());
            }
            query.fetch_all(p).await?
        });
        rows.into_iter().map(Task::try_from).collect()
    }

    /// Tasks not yet finished (pending, routed or claimed) across the given instances.
    pub async fn count_open(&self, instances: &[InstanceId]) -> StoreResult<i64> {
        if instances.is_empty() {
            return Ok(0);
        }
        let q = format!(
            "SELECT COUNT(*) FROM tasks WHERE instance_id IN ({}) AND status IN ('pending', 'routed', 'claimed')",
            placeholders(1, instances.len())
        );
        let n: i64 = on_reader!(self, p => {
            let mut query = sqlx::query_scalar(&q);
            for i in instances {
                query = query.bind(i.as_str());
            }
            query.fetch_one(p).await?
        });
        Ok(n)
    }

    pub async fn status_counts(&self, instance: &InstanceId) -> StoreResult<Vec<(String, i64)>> {
        const Q: &str = "SELECT status, COUNT(*) FROM tasks WHERE instance_id = $1 GROUP BY status";
        let rows: Vec<(String, i64)> =
            on_reader!(self, p => sqlx::query_as(Q).bind(instance.as_str()).fetch_all(p).await?);
        Ok(rows)
    }

    pub async fn oldest_pending(&self, instance: &InstanceId) -> StoreResult<Option<Millis>> {
        const Q: &str =
            "SELECT MIN(created_at) FROM tasks WHERE instance_id = $1 AND status = 'pending'";
        let v: Option<i64> = on_reader!(self, p => sqlx::query_scalar(Q).bind(instance.as_str()).fetch_one(p).await?);
        Ok(v)
    }

    /// The pending tasks of `instance` counted by what they require (the JSON array as
    /// stored): few distinct sets even in a long queue.
    pub async fn pending_requirements(
        &self,
        instance: &InstanceId,
    ) -> StoreResult<Vec<(Vec<String>, i64)>> {
        const Q: &str = "SELECT required_capabilities, COUNT(*) FROM tasks \
            WHERE instance_id = $1 AND status = 'pending' GROUP BY required_capabilities";
        let rows: Vec<(String, i64)> =
            on_reader!(self, p => sqlx::query_as(Q).bind(instance.as_str()).fetch_all(p).await?);
        rows.into_iter()
            .map(|(caps, n)| {
                Ok((
                    crate::store::rows::json("tasks.required_capabilities", &caps)?,
                    n,
                ))
            })
            .collect()
    }

    /// Deletes every task (and its history) of the given instances: the end of a run.
    pub async fn delete_instance_tasks(&self, instances: &[InstanceId]) -> StoreResult<u64> {
        if instances.is_empty() {
            return Ok(0);
        }
        let list = placeholders(1, instances.len());
        let ev = format!("DELETE FROM task_events WHERE instance_id IN ({list})");
        let tasks = format!("DELETE FROM tasks WHERE instance_id IN ({list})");
        on_writer!(self, c => {
            let mut tx = c.begin().await?;
            let mut q = sqlx::query(&tasks);
            for i in instances {
                q = q.bind(i.as_str());
            }
            let n = q.execute(&mut *tx).await?.rows_affected();
            let mut q = sqlx::query(&ev);
            for i in instances {
                q = q.bind(i.as_str());
            }
            q.execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(n)
        })
    }

    /// Retention: removes tasks of `instance` that finished before `before`.
    pub async fn purge_finished(&self, instance: &InstanceId, before: Millis) -> StoreResult<u64> {
        const EV: &str = "DELETE FROM task_events WHERE task_id IN (SELECT id FROM tasks \
                          WHERE instance_id = $1 AND finished_at IS NOT NULL AND finished_at < $2)";
        const TASKS: &str = "DELETE FROM tasks WHERE instance_id = $1 AND finished_at IS NOT NULL AND finished_at < $2";
        on_writer!(self, c => {
            let mut tx = c.begin().await?;
            sqlx::query(EV).bind(instance.as_str()).bind(before).execute(&mut *tx).await?;
            let n = sqlx::query(TASKS).bind(instance.as_str()).bind(before).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(n.rows_affected())
        })
    }
}

/// A page of every status of `instances` (bound `$1…$n`) in id order: one range of
/// `ix_tasks_instance_status` per instance and status, each limited, merged. `ORDER BY id`
/// over the instances alone read and sorted every row they hold: the REST listing's first
/// page of 50 took p50 77 ms with 1,000,000 tasks (`benches/ui`'s peer figure).
fn by_ranges(instances: usize, after_clause: &str, limit: i64) -> String {
    let mut parts = Vec::with_capacity(instances * TaskStatus::ALL.len());
    for i in 1..=instances {
        for s in TaskStatus::ALL {
            let s = s.as_str();
            parts.push(format!(
                "SELECT * FROM (SELECT {TASK_COLUMNS} FROM tasks WHERE instance_id = ${i} \
                 AND status = '{s}' {after_clause} ORDER BY id LIMIT {limit}) r{i}_{s}"
            ));
        }
    }
    format!(
        "SELECT * FROM ({}) u ORDER BY id LIMIT {limit}",
        parts.join(" UNION ALL ")
    )
}
