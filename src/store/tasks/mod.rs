//! Task queries. Every state change is one conditional `UPDATE ... RETURNING` (so two callers
//! can never both win it) followed by its history event, in one transaction. The UPDATE comes
//! first so SQLite takes its write lock at the start of the transaction and never has to
//! upgrade a read lock (which fails instead of waiting).

use super::events::append_event;
use super::rows::{
    Delegation, EventRecord, NewTaskRow, TASK_COLUMNS, TaskRow, bind_delegation, bind_new_task,
    to_json,
};
use super::sqlite::{self, PendingEvent};
use super::{Backend, Store, StoreResult, on_reader, on_writer};
use crate::domain::{Feedback, InstanceId, Millis, Task, TaskId, TaskStatus};
use sqlx::Connection as _;

mod dashboard;
mod listing;
mod sql;

pub use dashboard::{COUNT_CAP, InstanceCounts, TaskPage};

use sql::{
    CLAIM_NEXT_CAPS_PG_EV, CLAIM_NEXT_CAPS_SQLITE, CLAIM_NEXT_PG_EV, CLAIM_NEXT_SQLITE, CLAIM_ONE,
    CLAIM_ONE_PG_EV, FINISH_DELEGATED, HEARTBEAT, HEARTBEAT_PG_EV, INSERT_DELEGATING_PG_EV,
    INSERT_TASK_PG_EV, INSERT_TASK_RETURNING, bind_event, pg_with_event, status_list,
};

/// A conditional state change: applies only if the task is in one of `from` (and, when
/// `claimer` is set, held by that executor).
#[derive(Debug, Clone)]
pub struct FinishRequest<'a> {
    pub id: &'a TaskId,
    pub from: &'a [TaskStatus],
    pub to: TaskStatus,
    pub claimer: Option<&'a str>,
    /// When set, the change applies only under this lease, and only while it is unexpired.
    pub lease: Option<&'a str>,
    pub feedback: Option<&'a Feedback>,
    pub failure_reason: Option<&'a str>,
    pub event: EventRecord,
    pub now: Millis,
}

/// A [`FinishRequest`] that owns its parts, for writes that may run more than once.
struct OwnedFinish {
    id: TaskId,
    to: TaskStatus,
    claimer: Option<String>,
    lease: Option<String>,
    feedback: Option<String>,
    failure_reason: Option<String>,
    event: EventRecord,
    now: Millis,
}

impl From<&FinishRequest<'_>> for OwnedFinish {
    fn from(r: &FinishRequest<'_>) -> Self {
        Self {
            id: r.id.clone(),
            to: r.to,
            claimer: r.claimer.map(str::to_owned),
            lease: r.lease.map(str::to_owned),
            feedback: r.feedback.map(to_json),
            failure_reason: r.failure_reason.map(str::to_owned),
            event: r.event.clone(),
            now: r.now,
        }
    }
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
        let lite = match &self.backend {
            Backend::Sqlite(lite) => lite,
            Backend::Postgres(pg) => {
                // A delegated child task is re-inserted (same id) by recovery from its parent's
                // delegation row, so it need not wait for the flush.
                let p = match &row.parent_task_id {
                    Some(_) => pg.relaxed(),
                    None => pg.pool(),
                };
                let stored: Option<TaskRow> = match delegation {
                    None => {
                        let q = bind_new_task(sqlx::query_as(INSERT_TASK_PG_EV.as_str()), row);
                        bind_event!(q, row.now, event).fetch_optional(p).await?
                    }
                    Some(d) => {
                        let q =
                            bind_new_task(sqlx::query_as(INSERT_DELEGATING_PG_EV.as_str()), row);
                        bind_delegation(bind_event!(q, row.now, event), d)
                            .fetch_optional(p)
                            .await?
                    }
                };
                return self.inserted_or_existing(row, stored).await;
            }
        };
        let (new, d, ev) = (row.clone(), delegation.cloned(), event.clone());
        let stored: Option<TaskRow> = lite
            .commit(move |c, events| {
                let row = bind_new_task(sqlite::query(c, &INSERT_TASK_RETURNING)?, &new)
                    .fetch_optional(TaskRow::from_lite)?;
                if row.is_some() {
                    if let Some(d) = &d {
                        super::delegations::insert_delegation_lite(c, d)?;
                    }
                    events.push(PendingEvent::new(
                        new.id.as_str(),
                        new.instance_id.as_str(),
                        new.now,
                        &ev,
                    ));
                }
                Ok(row)
            })
            .await?;
        self.inserted_or_existing(row, stored).await
    }

    async fn inserted_or_existing(
        &self,
        row: &NewTaskRow,
        stored: Option<TaskRow>,
    ) -> StoreResult<(Task, bool)> {
        if let Some(r) = stored {
            return Ok((Task::try_from(r)?, true));
        }
        // The id existed already (a re-driven delegation): report what is stored.
        let task = self.get_task(&row.id).await?.ok_or_else(|| {
            super::StoreError::Corrupt(format!("task {} conflicted but is not there", row.id))
        })?;
        Ok((task, false))
    }

    pub async fn get_task(&self, id: &TaskId) -> StoreResult<Option<Task>> {
        let q = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1");
        let row: Option<TaskRow> =
            on_reader!(self, p => sqlx::query_as(&q).bind(id.as_str()).fetch_optional(p).await?);
        row.map(Task::try_from).transpose()
    }

    /// The tasks of `ids` that exist, by id: one statement per 200 ids. The dispatcher reads
    /// a whole outbox batch's tasks so, instead of one round trip per event.
    pub async fn get_tasks(
        &self,
        ids: &[&str],
    ) -> StoreResult<std::collections::HashMap<String, Task>> {
        let mut out = std::collections::HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(200) {
            let q = format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE id IN ({})",
                super::outbox::placeholders(1, chunk.len())
            );
            let rows: Vec<TaskRow> = on_reader!(self, p => {
                let q = crate::store::binds::for_conn(p, &q);
                let mut q = sqlx::query_as(&q);
                for id in chunk {
                    q = q.bind(*id);
                }
                q.fetch_all(p).await?
            });
            for r in rows {
                let t = Task::try_from(r)?;
                out.insert(t.id.as_str().to_owned(), t);
            }
        }
        Ok(out)
    }

    /// Atomically claims the best eligible pending task: highest priority, then oldest. With
    /// `capabilities` (a registered executor's), only a task that requires none beyond them.
    pub async fn claim_next(
        &self,
        instance: &InstanceId,
        executor: &str,
        capabilities: Option<&[String]>,
        now: Millis,
        lease_until: Millis,
        lease: &str,
    ) -> StoreResult<Option<Task>> {
        let caps = capabilities.map(|c| to_json(&c));
        // PostgreSQL: SKIP LOCKED lets concurrent workers (even in other processes) pass over a
        // row another transaction is claiming instead of queueing behind it. SQLite serialises
        // writers, so the plain sub-select is already atomic there.
        let lite = match &self.backend {
            Backend::Sqlite(lite) => lite,
            Backend::Postgres(pg) => {
                let ev = EventRecord::new("claimed", executor);
                let sql = if caps.is_some() {
                    CLAIM_NEXT_CAPS_PG_EV.as_str()
                } else {
                    CLAIM_NEXT_PG_EV.as_str()
                };
                let mut q = sqlx::query_as(sql)
                    .bind(instance.as_str())
                    .bind(executor)
                    .bind(now)
                    .bind(lease_until)
                    .bind(lease);
                if let Some(caps) = &caps {
                    q = q.bind(caps.as_str());
                }
                let row: Option<TaskRow> =
                    bind_event!(q, now, ev).fetch_optional(pg.pool()).await?;
                return row.map(Task::try_from).transpose();
            }
        };
        let (instance, executor, lease) = (instance.clone(), executor.to_owned(), lease.to_owned());
        let row: Option<TaskRow> = lite
            .commit(move |c, events| {
                let sql = if caps.is_some() {
                    &CLAIM_NEXT_CAPS_SQLITE
                } else {
                    &CLAIM_NEXT_SQLITE
                };
                let mut q = sqlite::query(c, sql)?
                    .bind(instance.as_str())
                    .bind(executor.as_str())
                    .bind(now)
                    .bind(lease_until)
                    .bind(lease.as_str());
                if let Some(caps) = &caps {
                    q = q.bind(caps.as_str());
                }
                let row = q.fetch_optional(TaskRow::from_lite)?;
                if let Some(r) = &row {
                    let ev = EventRecord::new("claimed", executor.as_str());
                    events.push(PendingEvent::new(r.id_str(), instance.as_str(), now, &ev));
                }
                Ok(row)
            })
            .await?;
        row.map(Task::try_from).transpose()
    }

    /// Claims one specific pending task.
    pub async fn claim(
        &self,
        id: &TaskId,
        executor: &str,
        now: Millis,
        lease_until: Millis,
        lease: &str,
    ) -> StoreResult<Option<Task>> {
        let ev = EventRecord::new("claimed", executor);
        let q = if self.is_postgres() {
            &CLAIM_ONE_PG_EV
        } else {
            &CLAIM_ONE
        };
        self.update_returning(q, id, executor, now, lease_until, lease, ev)
            .await
    }

    /// Extends the lease of a task the executor holds under `lease`.
    pub async fn heartbeat(
        &self,
        id: &TaskId,
        executor: &str,
        now: Millis,
        lease_until: Millis,
        lease: &str,
    ) -> StoreResult<Option<Task>> {
        let ev = EventRecord::new("heartbeat", executor);
        let q = if self.is_postgres() {
            &HEARTBEAT_PG_EV
        } else {
            &HEARTBEAT
        };
        self.update_returning(q, id, executor, now, lease_until, lease, ev)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn update_returning(
        &self,
        q: &'static str,
        id: &TaskId,
        executor: &str,
        now: Millis,
        lease_until: Millis,
        lease: &str,
        ev: EventRecord,
    ) -> StoreResult<Option<Task>> {
        let lite = match &self.backend {
            Backend::Sqlite(lite) => lite,
            Backend::Postgres(pg) => {
                let q = sqlx::query_as(q)
                    .bind(id.as_str())
                    .bind(executor)
                    .bind(now)
                    .bind(lease_until)
                    .bind(lease);
                let row: Option<TaskRow> =
                    bind_event!(q, now, ev).fetch_optional(pg.pool()).await?;
                return row.map(Task::try_from).transpose();
            }
        };
        let (id, executor, lease) = (id.clone(), executor.to_owned(), lease.to_owned());
        let row: Option<TaskRow> = lite
            .commit(move |c, events| {
                let row = sqlite::query(c, q)?
                    .bind(id.as_str())
                    .bind(executor.as_str())
                    .bind(now)
                    .bind(lease_until)
                    .bind(lease.as_str())
                    .fetch_optional(TaskRow::from_lite)?;
                if let Some(r) = &row {
                    events.push(PendingEvent::new(id.as_str(), r.instance_str(), now, &ev));
                }
                Ok(row)
            })
            .await?;
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
                "lease_id = NULL",
                "routed_to = NULL",
            ]);
        }
        sets.extend([
            "feedback = COALESCE($4, feedback)",
            "failure_reason = COALESCE($5, failure_reason)",
        ]);
        let q = format!(
            "UPDATE tasks SET {} WHERE id = $1 AND status IN ({}) \
             AND (CAST($6 AS TEXT) IS NULL OR claimed_by = $6) \
             AND (CAST($7 AS TEXT) IS NULL OR (lease_id = $7 AND lease_expires_at >= $3)) \
             RETURNING {TASK_COLUMNS}",
            sets.join(", "),
            status_list(req.from),
        );
        let lite = match &self.backend {
            Backend::Sqlite(lite) => lite,
            Backend::Postgres(pg) => {
                let q = pg_with_event(&q, 7);
                let q = sqlx::query_as(&q)
                    .bind(req.id.as_str())
                    .bind(req.to.as_str())
                    .bind(req.now)
                    .bind(req.feedback.map(to_json))
                    .bind(req.failure_reason)
                    .bind(req.claimer)
                    .bind(req.lease);
                let row: Option<TaskRow> = bind_event!(q, req.now, req.event)
                    .fetch_optional(pg.pool())
                    .await?;
                return row.map(Task::try_from).transpose();
            }
        };
        let owned = OwnedFinish::from(req);
        let row: Option<TaskRow> = lite
            .commit(move |c, events| {
                let row = sqlite::query(c, &q)?
                    .bind(owned.id.as_str())
                    .bind(owned.to.as_str())
                    .bind(owned.now)
                    .bind(owned.feedback.as_deref())
                    .bind(owned.failure_reason.as_deref())
                    .bind(owned.claimer.as_deref())
                    .bind(owned.lease.as_deref())
                    .fetch_optional(TaskRow::from_lite)?;
                if let Some(r) = &row {
                    events.push(PendingEvent::new(
                        owned.id.as_str(),
                        r.instance_str(),
                        owned.now,
                        &owned.event,
                    ));
                }
                Ok(row)
            })
            .await?;
        row.map(Task::try_from).transpose()
    }

    /// Finishes a routed parent task and closes its delegation in one transaction: whichever
    /// caller wins this update is the one that bubbles further, so bubbling happens once.
    pub async fn finish_delegated(
        &self,
        req: &FinishRequest<'_>,
        parent_instance: &InstanceId,
    ) -> StoreResult<Option<Task>> {
        const CLOSE: &str = "UPDATE task_delegations SET state = 'finished', finished_at = $3 \
                             WHERE parent_instance_id = $1 AND parent_task_id = $2";
        let owned = OwnedFinish::from(req);
        let lite = match &self.backend {
            Backend::Sqlite(lite) => lite,
            Backend::Postgres(pg) => {
                let mut tx = pg.pool().begin().await?;
                let row: Option<TaskRow> = sqlx::query_as(FINISH_DELEGATED.as_str())
                    .bind(owned.id.as_str())
                    .bind(owned.to.as_str())
                    .bind(owned.now)
                    .bind(owned.feedback.as_deref())
                    .bind(owned.failure_reason.as_deref())
                    .fetch_optional(&mut *tx)
                    .await?;
                if row.is_some() {
                    sqlx::query(CLOSE)
                        .bind(parent_instance.as_str())
                        .bind(owned.id.as_str())
                        .bind(owned.now)
                        .execute(&mut *tx)
                        .await?;
                    append_event!(&mut *tx, owned.id, parent_instance, owned.now, owned.event)?;
                }
                tx.commit().await?;
                return row.map(Task::try_from).transpose();
            }
        };
        let parent = parent_instance.clone();
        let row: Option<TaskRow> = lite
            .commit(move |c, events| {
                let row = sqlite::query(c, &FINISH_DELEGATED)?
                    .bind(owned.id.as_str())
                    .bind(owned.to.as_str())
                    .bind(owned.now)
                    .bind(owned.feedback.as_deref())
                    .bind(owned.failure_reason.as_deref())
                    .fetch_optional(TaskRow::from_lite)?;
                if row.is_some() {
                    sqlite::query(c, CLOSE)?
                        .bind(parent.as_str())
                        .bind(owned.id.as_str())
                        .bind(owned.now)
                        .execute()?;
                    events.push(PendingEvent::new(
                        owned.id.as_str(),
                        parent.as_str(),
                        owned.now,
                        &owned.event,
                    ));
                }
                Ok(row)
            })
            .await?;
        row.map(Task::try_from).transpose()
    }

    /// Hands every expired claim back to its queue; returns the tasks that were released.
    pub async fn expire_leases(&self, now: Millis) -> StoreResult<Vec<Task>> {
        let q = format!(
            "UPDATE tasks SET status = 'pending', claimed_by = NULL, claimed_at = NULL, \
             lease_expires_at = NULL, lease_id = NULL, updated_at = $1 \
             WHERE status = 'claimed' AND lease_expires_at < $1 RETURNING {TASK_COLUMNS}"
        );
        let ev = EventRecord::new("lease_expired", "hopper");
        let rows: Vec<TaskRow> = on_writer!(self, c => {
            let mut tx = c.begin().await?;
            let rows: Vec<TaskRow> = sqlx::query_as(&q).bind(now).fetch_all(&mut *tx).await?;
            for r in &rows {
                append_event!(&mut *tx, r.id_str(), r.instance_str(), now, ev)?;
            }
            tx.commit().await?;
            Ok(rows)
        })?;
        rows.into_iter().map(Task::try_from).collect()
    }
}
