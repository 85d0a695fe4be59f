//! The `tasks` table: its row, its columns, and a task about to be inserted.

use super::{EventRecord, StoreError, StoreResult, corrupt, json, opt_json, source_json, to_json};
use crate::domain::{
    Feedback, InstanceId, Millis, Priority, SourceRef, Task, TaskDraft, TaskId, TaskStatus,
    millis_to_rfc3339,
};

pub(in crate::store) const TASK_COLUMNS: &str = "id, instance_id, parent_task_id, title, description, tags, \
    priority, project, needs_orchestration, executor, required_capabilities, requester, source, \
    status, routed_to, routing_reason, claimed_by, claimed_at, lease_expires_at, attempts, \
    feedback, failure_reason, created_at, updated_at, finished_at, lease_id";

#[derive(sqlx::FromRow)]
pub(in crate::store) struct TaskRow {
    id: String,
    instance_id: String,
    parent_task_id: Option<String>,
    title: String,
    description: String,
    tags: String,
    priority: i64,
    project: Option<String>,
    needs_orchestration: bool,
    executor: Option<String>,
    required_capabilities: String,
    requester: Option<String>,
    source: Option<String>,
    status: String,
    routed_to: Option<String>,
    routing_reason: Option<String>,
    claimed_by: Option<String>,
    claimed_at: Option<i64>,
    lease_expires_at: Option<i64>,
    attempts: i64,
    feedback: Option<String>,
    failure_reason: Option<String>,
    created_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
    lease_id: Option<String>,
}

impl TaskRow {
    /// From a row of `TASK_COLUMNS` read on the SQLite writer (see `lite`).
    pub(in crate::store) fn from_lite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get("id")?,
            instance_id: r.get("instance_id")?,
            parent_task_id: r.get("parent_task_id")?,
            title: r.get("title")?,
            description: r.get("description")?,
            tags: r.get("tags")?,
            priority: r.get("priority")?,
            project: r.get("project")?,
            needs_orchestration: r.get("needs_orchestration")?,
            executor: r.get("executor")?,
            required_capabilities: r.get("required_capabilities")?,
            requester: r.get("requester")?,
            source: r.get("source")?,
            status: r.get("status")?,
            routed_to: r.get("routed_to")?,
            routing_reason: r.get("routing_reason")?,
            claimed_by: r.get("claimed_by")?,
            claimed_at: r.get("claimed_at")?,
            lease_expires_at: r.get("lease_expires_at")?,
            attempts: r.get("attempts")?,
            feedback: r.get("feedback")?,
            failure_reason: r.get("failure_reason")?,
            created_at: r.get("created_at")?,
            updated_at: r.get("updated_at")?,
            finished_at: r.get("finished_at")?,
            lease_id: r.get("lease_id")?,
        })
    }
}

impl TryFrom<TaskRow> for Task {
    type Error = StoreError;
    fn try_from(r: TaskRow) -> StoreResult<Task> {
        Ok(Task {
            id: TaskId::parse(&r.id).map_err(|e| corrupt("tasks.id", e))?,
            instance_id: InstanceId::parse(&r.instance_id)
                .map_err(|e| corrupt("tasks.instance_id", e))?,
            parent_task_id: r
                .parent_task_id
                .map(|p| TaskId::parse(&p))
                .transpose()
                .map_err(|e| corrupt("tasks.parent_task_id", e))?,
            title: r.title,
            description: r.description,
            tags: json("tasks.tags", &r.tags)?,
            priority: Priority::from_rank(r.priority),
            project: r.project,
            needs_orchestration: r.needs_orchestration,
            executor: r.executor,
            required_capabilities: json("tasks.required_capabilities", &r.required_capabilities)?,
            requester: r.requester,
            source: opt_json::<SourceRef>("tasks.source", r.source)?,
            status: r.status.parse().map_err(|e| corrupt("tasks.status", e))?,
            routed_to: r
                .routed_to
                .map(|p| InstanceId::parse(&p))
                .transpose()
                .map_err(|e| corrupt("tasks.routed_to", e))?,
            routing_reason: r.routing_reason,
            claimed_by: r.claimed_by,
            claimed_at: r.claimed_at.map(millis_to_rfc3339),
            lease_expires_at: r.lease_expires_at.map(millis_to_rfc3339),
            attempts: r.attempts,
            feedback: opt_json::<Feedback>("tasks.feedback", r.feedback)?,
            failure_reason: r.failure_reason,
            created_at: millis_to_rfc3339(r.created_at),
            updated_at: millis_to_rfc3339(r.updated_at),
            finished_at: r.finished_at.map(millis_to_rfc3339),
            lease_id: r.lease_id,
        })
    }
}

impl TaskRow {
    pub(in crate::store) fn id_str(&self) -> &str {
        &self.id
    }

    pub(in crate::store) fn instance_str(&self) -> &str {
        &self.instance_id
    }
}

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
        let at = millis_to_rfc3339(self.now);
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
            lease_id: None,
            attempts: 0,
            feedback: None,
            failure_reason: None,
            created_at: at.clone(),
            updated_at: at,
            finished_at: None,
        }
    }
}

pub(in crate::store) const INSERT_TASK: &str = "INSERT INTO tasks (id, instance_id, parent_task_id, title, description, \
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
            .bind($crate::store::rows::to_json(&d.tags))
            .bind(d.priority.rank())
            .bind(d.project.clone())
            .bind(d.needs_orchestration)
            .bind(d.executor.clone())
            .bind($crate::store::rows::to_json(&d.required_capabilities))
            .bind(d.requester.clone())
            .bind(d.source.as_ref().map($crate::store::rows::source_json))
            .bind($r.status.as_str())
            .bind($r.routed_to.as_ref().map(|p| p.as_str().to_owned()))
            .bind($r.routing_reason.clone())
            .bind($r.now)
    }};
}
pub(in crate::store) use bind_new_task;

/// A PostgreSQL batch statement whose answer is a list of ids (see `postgres`).
pub(in crate::store) type BatchQuery<'q> = sqlx::query::QueryScalar<
    'q,
    sqlx::Postgres,
    String,
    <sqlx::Postgres as sqlx::Database>::Arguments<'q>,
>;

/// Binds new tasks and their `created` events as the 20 arrays a batch statement `unnest`s:
/// the 17 columns `INSERT_TASK` takes, in its order, then the event's kind, actor, detail.
pub(in crate::store) fn bind_task_arrays<'q>(
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
