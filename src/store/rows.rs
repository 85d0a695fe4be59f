//! Row types shared by both dialects, and their conversion to domain types.

use crate::domain::{
    Feedback, Instance, InstanceId, Priority, SourceRef, Task, TaskEvent, TaskId, millis_to_rfc3339,
};

use super::{StoreError, StoreResult};

pub(super) const TASK_COLUMNS: &str = "id, instance_id, parent_task_id, title, description, tags, \
    priority, project, needs_orchestration, executor, required_capabilities, requester, source, \
    status, routed_to, routing_reason, claimed_by, claimed_at, lease_expires_at, attempts, \
    feedback, failure_reason, created_at, updated_at, finished_at, lease_id";

#[derive(sqlx::FromRow)]
pub(super) struct TaskRow {
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
    pub(super) fn from_lite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
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

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|e| corrupt(what, e))
}

fn opt_json<T: serde::de::DeserializeOwned>(
    what: &str,
    s: Option<String>,
) -> StoreResult<Option<T>> {
    s.map(|s| json(what, &s)).transpose()
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

#[derive(sqlx::FromRow)]
pub(super) struct EventRow {
    at: i64,
    kind: String,
    actor: Option<String>,
    detail: Option<String>,
}

impl TryFrom<EventRow> for TaskEvent {
    type Error = StoreError;
    fn try_from(r: EventRow) -> StoreResult<TaskEvent> {
        Ok(TaskEvent {
            at: millis_to_rfc3339(r.at),
            kind: r.kind,
            actor: r.actor,
            detail: opt_json("task_events.detail", r.detail)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct InstanceRow {
    instance_id: String,
    scope: String,
    parent_instance_id: Option<String>,
    config: String,
    status: String,
    metadata: String,
    summary: Option<String>,
    created_at: i64,
}

impl TryFrom<InstanceRow> for Instance {
    type Error = StoreError;
    fn try_from(r: InstanceRow) -> StoreResult<Instance> {
        Ok(Instance {
            instance_id: InstanceId::parse(&r.instance_id)
                .map_err(|e| corrupt("instance_id", e))?,
            scope: r.scope.parse().map_err(|e| corrupt("scope", e))?,
            parent_instance_id: r
                .parent_instance_id
                .map(|p| InstanceId::parse(&p))
                .transpose()
                .map_err(|e| corrupt("parent_instance_id", e))?,
            config: json("config", &r.config)?,
            status: r.status.parse().map_err(|e| corrupt("status", e))?,
            metadata: json("metadata", &r.metadata)?,
            summary: opt_json("summary", r.summary)?,
            created_at: millis_to_rfc3339(r.created_at),
        })
    }
}

impl TaskRow {
    pub(super) fn id_str(&self) -> &str {
        &self.id
    }

    pub(super) fn instance_str(&self) -> &str {
        &self.instance_id
    }
}
