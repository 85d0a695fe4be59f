//! Task queries. Every state change is one conditional `UPDATE ... RETURNING` (so two callers
//! can never both win it) followed by its history event, in one transaction. The UPDATE comes
//! first so SQLite takes its write lock at the start of the transaction and never has to
//! upgrade a read lock (which fails instead of waiting).

use super::rows::{TASK_COLUMNS, TaskRow};
use super::{Db, Delegation, EventRecord, Store, StoreResult, on_db};
use crate::domain::{Feedback, InstanceId, Millis, SourceRef, Task, TaskDraft, TaskId, TaskStatus};
use crate::store::events::append_event;

/// A task about to be inserted.
#[derive(Debug, Clone)]
pub struct NewTaskRow {
    pub id: TaskId,
    pub instance_id: InstanceId,
    pub parent_task_id: Option<TaskId>,
    pub draft: TaskDraft,
    pub status: TaskStatus,
    pub routed_to: Option<InstanceId>,
    pub routing_reason: Option<String>,
    pub now: Millis,
}

/// A conditional state change: applies only if the task is in one of `from` (and, when
/// `claimer` is set, held by that executor).
#[derive(Debug, Clone)]
pub struct FinishRequest<'a> {
    pub id: &'a TaskId,
    pub from: &'a [TaskStatus],
    pub to: TaskStatus,
    pub claimer: Option<&'a str>,
    pub feedback: Option<&'a Feedback>,
    pub failure_reason: Option<&'a str>,
    pub event: EventRecord,
    pub now: Millis,
}

fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn status_list(statuses: &[TaskStatus]) -> String {
    // Status names are compile-time constants, never caller input, so inlining them is safe and
    // lets the planner match the partial indexes.
    statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

const INSERT_TASK: &str = "INSERT INTO tasks (id, instance_id, parent_task_id, title, description, \
    tags, priority, project, needs_orchestration, executor, required_capabilities, requester, \
    source, status, routed_to, routing_reason, created_at, updated_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17) \
    ON CONFLICT (id) DO NOTHING";

macro_rules! bind_new_task {
    ($q:expr, $r:expr) => {{
        let d = &$r.draft;
        $q.bind($r.id.as_str())
            .bind($r.instance_id.as_str())
            .bind($r.parent_task_id.as_ref().map(|p| p.as_str().to_owned()))
            .bind(d.title.as_str())
            .bind(d.description.as_str())
            .bind(to_json(&d.tags))
            .bind(d.priority.rank())
            .bind(d.project.clone())
            .bind(d.needs_orchestration)
            .bind(d.executor.clone())
            .bind(to_json(&d.required_capabilities))
            .bind(d.requester.clone())
            .bind(d.source.as_ref().map(source_json))
            .bind($r.status.as_str())
            .bind($r.routed_to.as_ref().map(|p| p.as_str().to_owned()))
            .bind($r.routing_reason.clone())
            .bind($r.now)
    }};
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn source_json(s: &SourceRef) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "null".into())
}

impl Store {
    /// Inserts a task unless one with its id exists (re-drives reuse ids). Returns the stored
    /// task and whether this call created it.
    pub async fn insert_task(
        &self,
        row: &NewTaskRow,
        event: &EventRecord,
    ) -> StoreResult<(Task, bool)> {
        self.insert_inner(row, None, event).await
    }

    /// Inserts a routed task together with the delegation that will carry it to a child, in one
    /// transaction: afterwards the hand-off can always be completed or re-driven.
    pub async fn insert_delegating_task(
        &self,
        row: &NewTaskRow,
        delegation: &Delegation,
        event: &EventRecord,
    ) -> StoreResult<(Task, bool)> {
        self.insert_inner(row, Some(delegation), event).await
    }

    async fn insert_inner(
        &self,
        row: &NewTaskRow,
        delegation: Option<&Delegation>,
        event: &EventRecord,
    ) -> StoreResult<(Task, bool)> {
        let q = format!("{INSERT_TASK} RETURNING {TASK_COLUMNS}");
        let new = row;
        let row: Option<TaskRow> = on_db!(&self.db, p => {
            let mut tx = p.begin().await?;
            let row: Option<TaskRow> = bind_new_task!(sqlx::query_as(&q), new).fetch_optional(&mut *tx).await?;
            if row.is_some() {
                if let Some(d) = delegation {
                    super::delegations::insert_delegation!(&mut *tx, d)?;
                }
                append_event!(&mut *tx, new.id, new.instance_id, new.now, event)?;
            }
            tx.commit().await?;
            row
        });
        if let Some(r) = row {
            return Ok((Task::try_from(r)?, true));
        }
        // The id existed already (a re-driven delegation): report what is stored.
        let task = self.get_task(&new.id).await?.ok_or_else(|| {
            super::StoreError::Corrupt(format!("task {} conflicted but is not there", new.id))
        })?;
        Ok((task, false))
    }

    pub async fn get_task(&self, id: &TaskId) -> StoreResult<Option<Task>> {
        let q = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1");
        let row: Option<TaskRow> = on_db!(&self.reader, p => sqlx::query_as(&q).bind(id.as_str()).fetch_optional(p).await?);
        row.map(Task::try_from).transpose()
    }

    /// Atomically claims the best eligible pending task: highest priority, then oldest.
    pub async fn claim_next(
        &self,
        instance: &InstanceId,
        executor: &str,
        now: Millis,
        lease_until: Millis,
    ) -> StoreResult<Option<Task>> {
        // PostgreSQL: SKIP LOCKED lets concurrent workers (even in other processes) pass over a
        // row another transaction is claiming instead of queueing behind it. SQLite serialises
        // writers, so the plain sub-select is already atomic there.
        let lock = match self.db {
            Db::Postgres(_) => "FOR UPDATE SKIP LOCKED",
            Db::Sqlite(_) => "",
        };
        let q = format!(
            "UPDATE tasks SET status = 'claimed', claimed_by = $2, claimed_at = $3, \
             lease_expires_at = $4, attempts = attempts + 1, updated_at = $3 \
             WHERE status = 'pending' AND id = (SELECT id FROM tasks \
                WHERE instance_id = $1 AND status = 'pending' AND (executor IS NULL OR executor = $2) \
                ORDER BY priority DESC, id LIMIT 1 {lock}) \
             RETURNING {TASK_COLUMNS}"
        );
        let ev = EventRecord::new("claimed", executor);
        let row: Option<TaskRow> = on_db!(&self.db, p => {
            let mut tx = p.begin().await?;
            let row: Option<TaskRow> = sqlx::query_as(&q)
                .bind(instance.as_str())
                .bind(executor)
                .bind(now)
                .bind(lease_until)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(r) = &row {
                append_event!(&mut *tx, r.id_str(), instance, now, ev)?;
            }
            tx.commit().await?;
            row
        });
        row.map(Task::try_from).transpose()
    }

    /// Claims one specific pending task.
    pub async fn claim(
        &self,
        id: &TaskId,
        executor: &str,
        now: Millis,
        lease_until: Millis,
    ) -> StoreResult<Option<Task>> {
        let q = format!(
            "UPDATE tasks SET status = 'claimed', claimed_by = $2, claimed_at = $3, \
             lease_expires_at = $4, attempts = attempts + 1, updated_at = $3 \
             WHERE id = $1 AND status = 'pending' AND (executor IS NULL OR executor = $2) \
             RETURNING {TASK_COLUMNS}"
        );
        let ev = EventRecord::new("claimed", executor);
        self.update_returning(&q, id, executor, now, Some(lease_until), ev)
            .await
    }

    /// Extends the lease of a task the executor holds.
    pub async fn heartbeat(
        &self,
        id: &TaskId,
        executor: &str,
        now: Millis,
        lease_until: Millis,
    ) -> StoreResult<Option<Task>> {
        let q = format!(
            "UPDATE tasks SET lease_expires_at = $4, updated_at = $3 \
             WHERE id = $1 AND status = 'claimed' AND claimed_by = $2 RETURNING {TASK_COLUMNS}"
        );
        let ev = EventRecord::new("heartbeat", executor);
        self.update_returning(&q, id, executor, now, Some(lease_until), ev)
            .await
    }

    async fn update_returning(
        &self,
        q: &str,
        id: &TaskId,
        executor: &str,
        now: Millis,
        lease_until: Option<Millis>,
        ev: EventRecord,
    ) -> StoreResult<Option<Task>> {
        let row: Option<TaskRow> = on_db!(&self.db, p => {
            let mut tx = p.begin().await?;
            let row: Option<TaskRow> = sqlx::query_as(q)
                .bind(id.as_str())
                .bind(executor)
                .bind(now)
                .bind(lease_until)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(r) = &row {
                append_event!(&mut *tx, id, r.instance_str(), now, ev)?;
            }
            tx.commit().await?;
            row
        });
        row.map(Task::try_from).transpose()
    }

    /// Moves a task to `to` if it is in one of `from`; `None` when the condition did not hold.
    pub async fn transition(&self, req: &FinishRequest<'_>) -> StoreResult<Option<Task>> {
        let terminal = req.to.is_terminal();
        let mut sets = vec!["status = $2", "updated_at = $3"];
        if terminal {
            sets.extend(["finished_at = $3", "lease_expires_at = NULL"]);
        }
        if req.to == TaskStatus::Pending {
            sets.extend([
                "claimed_by = NULL",
                "claimed_at = NULL",
                "lease_expires_at = NULL",
                "routed_to = NULL",
            ]);
        }
        sets.extend([
            "feedback = COALESCE($4, feedback)",
            "failure_reason = COALESCE($5, failure_reason)",
        ]);
        let q = format!(
            "UPDATE tasks SET {} WHERE id = $1 AND status IN ({}) \
             AND (CAST($6 AS TEXT) IS NULL OR claimed_by = $6) RETURNING {TASK_COLUMNS}",
            sets.join(", "),
            status_list(req.from),
        );
        let feedback = req.feedback.map(to_json);
        let row: Option<TaskRow> = on_db!(&self.db, p => {
            let mut tx = p.begin().await?;
            let row: Option<TaskRow> = sqlx::query_as(&q)
                .bind(req.id.as_str())
                .bind(req.to.as_str())
                .bind(req.now)
                .bind(feedback.clone())
                .bind(req.failure_reason)
                .bind(req.claimer)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(r) = &row {
                append_event!(&mut *tx, req.id, r.instance_str(), req.now, req.event)?;
            }
            tx.commit().await?;
            row
        });
        row.map(Task::try_from).transpose()
    }

    /// Finishes a routed parent task and closes its delegation in one transaction: whichever
    /// caller wins this update is the one that bubbles further, so bubbling happens once.
    pub async fn finish_delegated(
        &self,
        req: &FinishRequest<'_>,
        parent_instance: &InstanceId,
    ) -> StoreResult<Option<Task>> {
        let q = format!(
            "UPDATE tasks SET status = $2, updated_at = $3, finished_at = $3, \
             feedback = COALESCE($4, feedback), failure_reason = COALESCE($5, failure_reason) \
             WHERE id = $1 AND status = 'routed' RETURNING {TASK_COLUMNS}"
        );
        let feedback = req.feedback.map(to_json);
        let row: Option<TaskRow> = on_db!(&self.db, p => {
            let mut tx = p.begin().await?;
            let row: Option<TaskRow> = sqlx::query_as(&q)
                .bind(req.id.as_str())
                .bind(req.to.as_str())
                .bind(req.now)
                .bind(feedback.clone())
                .bind(req.failure_reason)
                .fetch_optional(&mut *tx)
                .await?;
            if row.is_some() {
                sqlx::query("UPDATE task_delegations SET state = 'finished', finished_at = $3 \
                             WHERE parent_instance_id = $1 AND parent_task_id = $2")
                    .bind(parent_instance.as_str())
                    .bind(req.id.as_str())
                    .bind(req.now)
                    .execute(&mut *tx)
                    .await?;
                append_event!(&mut *tx, req.id, parent_instance, req.now, req.event)?;
            }
            tx.commit().await?;
            row
        });
        row.map(Task::try_from).transpose()
    }

    /// Hands every expired claim back to its queue; returns the tasks that were released.
    pub async fn expire_leases(&self, now: Millis) -> StoreResult<Vec<Task>> {
        let q = format!(
            "UPDATE tasks SET status = 'pending', claimed_by = NULL, claimed_at = NULL, \
             lease_expires_at = NULL, updated_at = $1 \
             WHERE status = 'claimed' AND lease_expires_at < $1 RETURNING {TASK_COLUMNS}"
        );
        let ev = EventRecord::new("lease_expired", "hopper");
        let rows: Vec<TaskRow> = on_db!(&self.db, p => {
            let mut tx = p.begin().await?;
            let rows: Vec<TaskRow> = sqlx::query_as(&q).bind(now).fetch_all(&mut *tx).await?;
            for r in &rows {
                append_event!(&mut *tx, r.id_str(), r.instance_str(), now, ev)?;
            }
            tx.commit().await?;
            rows
        });
        rows.into_iter().map(Task::try_from).collect()
    }

    pub async fn list_tasks(
        &self,
        instances: &[InstanceId],
        status: Option<TaskStatus>,
        limit: i64,
    ) -> StoreResult<Vec<Task>> {
        if instances.is_empty() {
            return Ok(Vec::new());
        }
        let status_clause = status
            .map(|s| format!("AND status = '{}'", s.as_str()))
            .unwrap_or_default();
        let q = format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE instance_id IN ({}) {status_clause} \
             ORDER BY id LIMIT {limit}",
            placeholders(1, instances.len())
        );
        let rows: Vec<TaskRow> = on_db!(&self.reader, p => {
            let mut query = sqlx::query_as(&q);
            for i in instances {
                query = query.bind(i.as_str());
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
        let n: i64 = on_db!(&self.reader, p => {
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
        let rows: Vec<(String, i64)> = on_db!(&self.reader, p => sqlx::query_as(Q).bind(instance.as_str()).fetch_all(p).await?);
        Ok(rows)
    }

    pub async fn oldest_pending(&self, instance: &InstanceId) -> StoreResult<Option<Millis>> {
        const Q: &str =
            "SELECT MIN(created_at) FROM tasks WHERE instance_id = $1 AND status = 'pending'";
        let v: Option<i64> = on_db!(&self.reader, p => sqlx::query_scalar(Q).bind(instance.as_str()).fetch_one(p).await?);
        Ok(v)
    }

    /// Deletes every task (and its history) of the given instances: the end of a run.
    pub async fn delete_instance_tasks(&self, instances: &[InstanceId]) -> StoreResult<u64> {
        if instances.is_empty() {
            return Ok(0);
        }
        let list = placeholders(1, instances.len());
        let ev = format!("DELETE FROM task_events WHERE instance_id IN ({list})");
        let tasks = format!("DELETE FROM tasks WHERE instance_id IN ({list})");
        let n = on_db!(&self.db, p => {
            let mut tx = p.begin().await?;
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
            n
        });
        Ok(n)
    }

    /// Retention: removes tasks of `instance` that finished before `before`.
    pub async fn purge_finished(&self, instance: &InstanceId, before: Millis) -> StoreResult<u64> {
        const EV: &str = "DELETE FROM task_events WHERE task_id IN (SELECT id FROM tasks \
                          WHERE instance_id = $1 AND finished_at IS NOT NULL AND finished_at < $2)";
        const TASKS: &str = "DELETE FROM tasks WHERE instance_id = $1 AND finished_at IS NOT NULL AND finished_at < $2";
        let n = on_db!(&self.db, p => {
            let mut tx = p.begin().await?;
            sqlx::query(EV).bind(instance.as_str()).bind(before).execute(&mut *tx).await?;
            let n = sqlx::query(TASKS).bind(instance.as_str()).bind(before).execute(&mut *tx).await?;
            tx.commit().await?;
            n.rows_affected()
        });
        Ok(n)
    }
}
