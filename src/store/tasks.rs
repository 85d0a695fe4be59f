//! Task queries. Every state change is one conditional `UPDATE ... RETURNING` (so two callers
//! can never both win it) followed by its history event, in one transaction. The UPDATE comes
//! first so SQLite takes its write lock at the start of the transaction and never has to
//! upgrade a read lock (which fails instead of waiting).

use std::sync::LazyLock;

use super::commit::PendingEvent;
use super::rows::{TASK_COLUMNS, TaskRow};
use super::{Db, Delegation, EventRecord, Store, StoreResult, lite, on_db};
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

impl NewTaskRow {
    /// The task exactly as inserting this row stores it (for writes that do not read back).
    pub fn to_task(&self) -> Task {
        let d = &self.draft;
        let at = crate::domain::millis_to_rfc3339(self.now);
        Task {
            id: self.id.clone(),
            instance_id: self.instance_id.clone(),
            parent_task_id: self.parent_task_id.clone(),
            title: d.title.clone(),
            description: d.description.clone(),
            tags: d.tags.clone(),
            priority: d.priority,
            project: d.project.clone(),
            needs_orchestration: d.needs_orchestration,
            executor: d.executor.clone(),
            required_capabilities: d.required_capabilities.clone(),
            requester: d.requester.clone(),
            source: d.source.clone(),
            status: self.status,
            routed_to: self.routed_to.clone(),
            routing_reason: self.routing_reason.clone(),
            claimed_by: None,
            claimed_at: None,
            lease_expires_at: None,
            attempts: 0,
            feedback: None,
            failure_reason: None,
            created_at: at.clone(),
            updated_at: at,
            finished_at: None,
        }
    }
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

/// A [`FinishRequest`] that owns its parts, for writes that may run more than once.
struct OwnedFinish {
    id: TaskId,
    to: TaskStatus,
    claimer: Option<String>,
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
            feedback: r.feedback.map(to_json),
            failure_reason: r.failure_reason.map(str::to_owned),
            event: r.event.clone(),
            now: r.now,
        }
    }
}

pub(super) static INSERT_TASK_RETURNING: LazyLock<String> =
    LazyLock::new(|| format!("{INSERT_TASK} RETURNING {TASK_COLUMNS}"));

/// PostgreSQL: SKIP LOCKED lets concurrent workers (even in other processes) pass over a row
/// another transaction is claiming instead of queueing behind it. SQLite serialises writers,
/// so the plain sub-select is already atomic there.
static CLAIM_NEXT_PG: LazyLock<String> = LazyLock::new(|| claim_next_sql("FOR UPDATE SKIP LOCKED"));
static CLAIM_NEXT_SQLITE: LazyLock<String> = LazyLock::new(|| claim_next_sql(""));

fn claim_next_sql(lock: &str) -> String {
    format!(
        "UPDATE tasks SET status = 'claimed', claimed_by = $2, claimed_at = $3, \
         lease_expires_at = $4, attempts = attempts + 1, updated_at = $3 \
         WHERE status = 'pending' AND id = (SELECT id FROM tasks \
            WHERE instance_id = $1 AND status = 'pending' AND (executor IS NULL OR executor = $2) \
            ORDER BY priority DESC, id LIMIT 1 {lock}) \
         RETURNING {TASK_COLUMNS}"
    )
}

/// PostgreSQL: a conditional change and its history event as one statement (a data-modifying
/// CTE), i.e. one round trip in an implicit transaction instead of BEGIN, UPDATE, INSERT,
/// COMMIT. `update` takes `n` parameters; the event's at/kind/actor/detail follow them.
fn pg_with_event(update: &str, n: usize) -> String {
    format!(
        "WITH t AS ({update}), e AS (INSERT INTO task_events \
         (task_id, instance_id, at, kind, actor, detail) \
         SELECT id, instance_id, CAST(${a} AS BIGINT), CAST(${k} AS TEXT), CAST(${w} AS TEXT), \
         CAST(${d} AS TEXT) FROM t) SELECT {TASK_COLUMNS} FROM t",
        a = n + 1,
        k = n + 2,
        w = n + 3,
        d = n + 4
    )
}

/// Binds an event's fields after a statement built by [`pg_with_event`].
macro_rules! bind_event {
    ($q:expr, $at:expr, $ev:expr) => {
        $q.bind($at)
            .bind($ev.kind)
            .bind($ev.actor.as_str())
            .bind($ev.detail.as_ref().map(|d| d.to_string()))
    };
}

static INSERT_TASK_PG_EV: LazyLock<String> =
    LazyLock::new(|| pg_with_event(&INSERT_TASK_RETURNING, 17));
/// The same, with the delegation that carries the task to a child (parameters 22 to 28).
static INSERT_DELEGATING_PG_EV: LazyLock<String> = LazyLock::new(|| {
    INSERT_TASK_PG_EV.replacen(
        "), e AS (",
        "), d AS (INSERT INTO task_delegations (parent_instance_id, parent_task_id, \
         child_instance_id, child_task_id, kind, state, delegated_at) \
         SELECT CAST($22 AS TEXT), CAST($23 AS TEXT), CAST($24 AS TEXT), CAST($25 AS TEXT), \
         CAST($26 AS TEXT), CAST($27 AS TEXT), CAST($28 AS BIGINT) FROM t), e AS (",
        1,
    )
});

static CLAIM_NEXT_PG_EV: LazyLock<String> = LazyLock::new(|| pg_with_event(&CLAIM_NEXT_PG, 4));
static CLAIM_ONE_PG_EV: LazyLock<String> = LazyLock::new(|| pg_with_event(&CLAIM_ONE, 4));
static HEARTBEAT_PG_EV: LazyLock<String> = LazyLock::new(|| pg_with_event(&HEARTBEAT, 4));

static CLAIM_ONE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE tasks SET status = 'claimed', claimed_by = $2, claimed_at = $3, \
         lease_expires_at = $4, attempts = attempts + 1, updated_at = $3 \
         WHERE id = $1 AND status = 'pending' AND (executor IS NULL OR executor = $2) \
         RETURNING {TASK_COLUMNS}"
    )
});

static HEARTBEAT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE tasks SET lease_expires_at = $4, updated_at = $3 \
         WHERE id = $1 AND status = 'claimed' AND claimed_by = $2 RETURNING {TASK_COLUMNS}"
    )
});

static FINISH_DELEGATED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE tasks SET status = $2, updated_at = $3, finished_at = $3, \
         feedback = COALESCE($4, feedback), failure_reason = COALESCE($5, failure_reason) \
         WHERE id = $1 AND status = 'routed' RETURNING {TASK_COLUMNS}"
    )
});

pub(super) const INSERT_TASK: &str = "INSERT INTO tasks (id, instance_id, parent_task_id, title, description, \
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
pub(super) use bind_new_task;

/// A PostgreSQL batch statement whose answer is a list of ids (see `batch_pg`).
pub(super) type BatchQuery<'q> = sqlx::query::QueryScalar<
    'q,
    sqlx::Postgres,
    String,
    <sqlx::Postgres as sqlx::Database>::Arguments<'q>,
>;

/// Binds new tasks and their `created` events as the 20 arrays a batch statement `unnest`s:
/// the 17 columns `INSERT_TASK` takes, in its order, then the event's kind, actor, detail.
pub(super) fn bind_task_arrays<'q>(
    q: BatchQuery<'q>,
    rows: &[(&'q NewTaskRow, &'q EventRecord)],
) -> BatchQuery<'q> {
    let col =
        |f: fn(&NewTaskRow) -> Option<String>| rows.iter().map(|r| f(r.0)).collect::<Vec<_>>();
    q.bind(col(|t| Some(t.id.as_str().to_owned())))
        .bind(col(|t| Some(t.instance_id.as_str().to_owned())))
        .bind(col(|t| {
            t.parent_task_id.as_ref().map(|p| p.as_str().to_owned())
        }))
        .bind(col(|t| Some(t.draft.title.clone())))
        .bind(col(|t| Some(t.draft.description.clone())))
        .bind(col(|t| Some(to_json(&t.draft.tags))))
        .bind(
            rows.iter()
                .map(|r| r.0.draft.priority.rank())
                .collect::<Vec<_>>(),
        )
        .bind(col(|t| t.draft.project.clone()))
        .bind(
            rows.iter()
                .map(|r| r.0.draft.needs_orchestration)
                .collect::<Vec<_>>(),
        )
        .bind(col(|t| t.draft.executor.clone()))
        .bind(col(|t| Some(to_json(&t.draft.required_capabilities))))
        .bind(col(|t| t.draft.requester.clone()))
        .bind(col(|t| t.draft.source.as_ref().map(source_json)))
        .bind(col(|t| Some(t.status.as_str().to_owned())))
        .bind(col(|t| t.routed_to.as_ref().map(|r| r.as_str().to_owned())))
        .bind(col(|t| t.routing_reason.clone()))
        .bind(rows.iter().map(|r| r.0.now).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.kind).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.actor.as_str()).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.1.detail.as_ref().map(|d| d.to_string()))
                .collect::<Vec<_>>(),
        )
}

pub(super) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

pub(super) fn source_json(s: &SourceRef) -> String {
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
        if let Db::Postgres(p) = &self.db {
            // A delegated child task is re-inserted (same id) by recovery from its parent's
            // delegation row, so it need not wait for the flush.
            let p = match (&row.parent_task_id, &self.relaxed) {
                (Some(_), Some(relaxed)) => relaxed,
                _ => p,
            };
            let stored: Option<TaskRow> = match delegation {
                None => {
                    let q = bind_new_task!(sqlx::query_as(INSERT_TASK_PG_EV.as_str()), row);
                    bind_event!(q, row.now, event).fetch_optional(p).await?
                }
                Some(d) => {
                    let q = bind_new_task!(sqlx::query_as(INSERT_DELEGATING_PG_EV.as_str()), row);
                    bind_event!(q, row.now, event)
                        .bind(d.parent_instance_id.as_str())
                        .bind(d.parent_task_id.as_str())
                        .bind(d.child_instance_id.as_str())
                        .bind(d.child_task_id.as_str())
                        .bind(d.kind_str())
                        .bind(d.state_str())
                        .bind(d.delegated_at)
                        .fetch_optional(p)
                        .await?
                }
            };
            return self.inserted_or_existing(row, stored).await;
        }
        let (new, d, ev) = (row.clone(), delegation.cloned(), event.clone());
        let stored: Option<TaskRow> = self
            .lite_write(move |c, events| {
                let row = bind_new_task!(lite::query(c, &INSERT_TASK_RETURNING)?, new)
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
        if let Db::Postgres(p) = &self.db {
            let ev = EventRecord::new("claimed", executor);
            let q = sqlx::query_as(CLAIM_NEXT_PG_EV.as_str())
                .bind(instance.as_str())
                .bind(executor)
                .bind(now)
                .bind(lease_until);
            let row: Option<TaskRow> = bind_event!(q, now, ev).fetch_optional(p).await?;
            return row.map(Task::try_from).transpose();
        }
        let (instance, executor) = (instance.clone(), executor.to_owned());
        let row: Option<TaskRow> = self
            .lite_write(move |c, events| {
                let row = lite::query(c, &CLAIM_NEXT_SQLITE)?
                    .bind(instance.as_str())
                    .bind(executor.as_str())
                    .bind(now)
                    .bind(lease_until)
                    .fetch_optional(TaskRow::from_lite)?;
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
    ) -> StoreResult<Option<Task>> {
        let ev = EventRecord::new("claimed", executor);
        let q = if self.is_postgres() {
            &CLAIM_ONE_PG_EV
        } else {
            &CLAIM_ONE
        };
        self.update_returning(q, id, executor, now, Some(lease_until), ev)
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
        let ev = EventRecord::new("heartbeat", executor);
        let q = if self.is_postgres() {
            &HEARTBEAT_PG_EV
        } else {
            &HEARTBEAT
        };
        self.update_returning(q, id, executor, now, Some(lease_until), ev)
            .await
    }

    async fn update_returning(
        &self,
        q: &'static str,
        id: &TaskId,
        executor: &str,
        now: Millis,
        lease_until: Option<Millis>,
        ev: EventRecord,
    ) -> StoreResult<Option<Task>> {
        if let Db::Postgres(p) = &self.db {
            let q = sqlx::query_as(q)
                .bind(id.as_str())
                .bind(executor)
                .bind(now)
                .bind(lease_until);
            let row: Option<TaskRow> = bind_event!(q, now, ev).fetch_optional(p).await?;
            return row.map(Task::try_from).transpose();
        }
        let (id, executor) = (id.clone(), executor.to_owned());
        let row: Option<TaskRow> = self
            .lite_write(move |c, events| {
                let row = lite::query(c, q)?
                    .bind(id.as_str())
                    .bind(executor.as_str())
                    .bind(now)
                    .bind(lease_until)
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
        if let Db::Postgres(p) = &self.db {
            let q = pg_with_event(&q, 6);
            let q = sqlx::query_as(&q)
                .bind(req.id.as_str())
                .bind(req.to.as_str())
                .bind(req.now)
                .bind(req.feedback.map(to_json))
                .bind(req.failure_reason)
                .bind(req.claimer);
            let row: Option<TaskRow> = bind_event!(q, req.now, req.event).fetch_optional(p).await?;
            return row.map(Task::try_from).transpose();
        }
        let owned = OwnedFinish::from(req);
        let row: Option<TaskRow> = self
            .lite_write(move |c, events| {
                let row = lite::query(c, &q)?
                    .bind(owned.id.as_str())
                    .bind(owned.to.as_str())
                    .bind(owned.now)
                    .bind(owned.feedback.as_deref())
                    .bind(owned.failure_reason.as_deref())
                    .bind(owned.claimer.as_deref())
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
        if let Db::Postgres(p) = &self.db {
            let mut tx = p.begin().await?;
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
        let parent = parent_instance.clone();
        let row: Option<TaskRow> = self
            .lite_write(move |c, events| {
                let row = lite::query(c, &FINISH_DELEGATED)?
                    .bind(owned.id.as_str())
                    .bind(owned.to.as_str())
                    .bind(owned.now)
                    .bind(owned.feedback.as_deref())
                    .bind(owned.failure_reason.as_deref())
                    .fetch_optional(TaskRow::from_lite)?;
                if row.is_some() {
                    lite::query(c, CLOSE)?
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
        if !rows.is_empty() {
            self.durable().await?;
        }
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
