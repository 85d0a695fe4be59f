//! The `tasks` table. Its columns are named once, in the `task_table!` list below; the row
//! type, its mapping from sqlx and rusqlite rows and to [`Task`], the insert statement and its
//! binds (single rows on either driver, arrays in PostgreSQL batch statements) and
//! [`NewTaskRow::to_task`] are all generated from it (see `columns::task_table`).
//!
//! Adding a column is a migration per dialect plus one entry here (and the field on `Task`,
//! and on `TaskDraft` if a caller sets it).

use std::sync::LazyLock;

use super::columns::task_table;
use super::{EventRecord, StoreError, StoreResult, corrupt, json, opt_json, source_json, to_json};
use crate::domain::{
    Feedback, InstanceId, Millis, Priority, SourceRef, Task, TaskDraft, TaskId, TaskStatus,
    millis_to_rfc3339,
};

task_table! {
    id: String,
        insert text = |r| r.id.as_str(), new |r| r.id.clone(),
        read |v| TaskId::parse(&v).map_err(|e| corrupt("tasks.id", e))?;
    instance_id: String,
        insert text = |r| r.instance_id.as_str(), new |r| r.instance_id.clone(),
        read |v| InstanceId::parse(&v).map_err(|e| corrupt("tasks.instance_id", e))?;
    parent_task_id: Option<String>,
        insert text = |r| r.parent_task_id.as_ref().map(TaskId::as_str),
        new |r| r.parent_task_id.clone(),
        read |v| v
            .map(|p| TaskId::parse(&p))
            .transpose()
            .map_err(|e| corrupt("tasks.parent_task_id", e))?;
    title: String,
        insert text = |r| r.draft.title.as_str(), new |r| r.draft.title.clone(),
        read |v| v;
    description: String,
        insert text = |r| r.draft.description.as_str(), new |r| r.draft.description.clone(),
        read |v| v;
    tags: String,
        insert text = |r| to_json(&r.draft.tags), new |r| r.draft.tags.clone(),
        read |v| json("tasks.tags", &v)?;
    priority: i64,
        insert int8 = |r| r.draft.priority.rank(), new |r| r.draft.priority,
        read |v| Priority::from_rank(v);
    project: Option<String>,
        insert text = |r| r.draft.project.as_deref(), new |r| r.draft.project.clone(),
        read |v| v;
    needs_orchestration: bool,
        insert bool = |r| r.draft.needs_orchestration, new |r| r.draft.needs_orchestration,
        read |v| v;
    executor: Option<String>,
        insert text = |r| r.draft.executor.as_deref(), new |r| r.draft.executor.clone(),
        read |v| v;
    required_capabilities: String,
        insert text = |r| to_json(&r.draft.required_capabilities),
        new |r| r.draft.required_capabilities.clone(),
        read |v| json("tasks.required_capabilities", &v)?;
    requester: Option<String>,
        insert text = |r| r.draft.requester.as_deref(), new |r| r.draft.requester.clone(),
        read |v| v;
    source: Option<String>,
        insert text = |r| r.draft.source.as_ref().map(source_json),
        new |r| r.draft.source.clone(),
        read |v| opt_json::<SourceRef>("tasks.source", v)?;
    status: String,
        insert text = |r| r.status.as_str(), new |r| r.status,
        read |v| v.parse().map_err(|e| corrupt("tasks.status", e))?;
    routed_to: Option<String>,
        insert text = |r| r.routed_to.as_ref().map(InstanceId::as_str),
        new |r| r.routed_to.clone(),
        read |v| v
            .map(|p| InstanceId::parse(&p))
            .transpose()
            .map_err(|e| corrupt("tasks.routed_to", e))?;
    routing_reason: Option<String>,
        insert text = |r| r.routing_reason.as_deref(), new |r| r.routing_reason.clone(),
        read |v| v;
    claimed_by: Option<String>,
        read |v| v;
    claimed_at: Option<i64>,
        read |v| v.map(millis_to_rfc3339);
    lease_expires_at: Option<i64>,
        read |v| v.map(millis_to_rfc3339);
    attempts: i64,
        read |v| v;
    feedback: Option<String>,
        read |v| opt_json::<Feedback>("tasks.feedback", v)?;
    failure_reason: Option<String>,
        read |v| v;
    created_at: i64,
        insert int8 = |r| r.now, new |r| millis_to_rfc3339(r.now),
        read |v| millis_to_rfc3339(v);
    updated_at: i64,
        insert int8 = |r| r.now, new |r| millis_to_rfc3339(r.now),
        read |v| millis_to_rfc3339(v);
    finished_at: Option<i64>,
        read |v| v.map(millis_to_rfc3339);
    lease_id: Option<String>,
        read |v| v;
    due_at: Option<i64>,
        insert int8 = |r| r.draft.due_at.as_deref().and_then(crate::domain::rfc3339_to_millis),
        new |r| r.draft.due_at.as_deref().and_then(crate::domain::rfc3339_to_millis)
            .map(millis_to_rfc3339),
        read |v| v.map(millis_to_rfc3339);
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

/// Inserts a task (binds: [`bind_new_task`]) unless its id exists.
pub(in crate::store) static INSERT_TASK: LazyLock<String> = LazyLock::new(|| {
    let columns = TASK_INSERT.iter().map(|c| c.0).collect::<Vec<_>>();
    let values = (1..=TASK_INSERT.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>();
    format!(
        "INSERT INTO tasks ({}) VALUES ({}) ON CONFLICT (id) DO NOTHING",
        columns.join(", "),
        values.join(", ")
    )
});

/// A PostgreSQL batch statement whose answer is a list of ids (see `postgres`).
pub(in crate::store) type BatchQuery<'q> = sqlx::query::QueryScalar<
    'q,
    sqlx::Postgres,
    String,
    <sqlx::Postgres as sqlx::Database>::Arguments<'q>,
>;

/// The new tasks of a PostgreSQL batch statement as a relation `k`: `lead` text columns of the
/// caller's, then the arrays [`bind_task_arrays`] binds, from parameter `$first` on.
pub(in crate::store) fn unnest_tasks(first: usize, lead: &[&str]) -> String {
    const EVENT: [&str; 3] = ["ev_kind", "ev_actor", "ev_detail"];
    let types = lead
        .iter()
        .map(|_| "text")
        .chain(TASK_INSERT.iter().map(|c| c.1))
        .chain(EVENT.map(|_| "text"));
    let arrays = types
        .enumerate()
        .map(|(i, t)| format!("${}::{t}[]", first + i))
        .collect::<Vec<_>>();
    let names = lead
        .iter()
        .copied()
        .chain(TASK_INSERT.iter().map(|c| c.0))
        .chain(EVENT)
        .collect::<Vec<_>>();
    format!("unnest({}) AS k({})", arrays.join(", "), names.join(", "))
}

/// Inserts the rows of [`unnest_tasks`]' `k`; the caller adds `FROM k ...`.
pub(in crate::store) static INSERT_TASKS_FROM_K: LazyLock<String> = LazyLock::new(|| {
    let names: Vec<&str> = TASK_INSERT.iter().map(|c| c.0).collect();
    format!(
        "INSERT INTO tasks ({}) SELECT k.{}",
        names.join(", "),
        names.join(", k.")
    )
});
