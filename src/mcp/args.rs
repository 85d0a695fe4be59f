//! What each tool takes and answers. The inputs are the REST bodies and queries with the path
//! parameters (`task_id`, `instance`) made fields, unknown fields refused as the REST API
//! refuses them; the answers are objects (MCP's structured content must be one), wrapping the
//! REST answer where that is a list or may be empty.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{
    Executor, Feedback, MemoryHit, Priority, SourceRef, Task, TaskDraft, TaskEvent, TaskStatus,
};

/// Add a task: the instance's scope decides what happens to it (the global one routes it to a
/// project). As `POST /v1/instances/{id}/tasks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddTask {
    /// The instance to add it to (default `hopper-global`).
    #[serde(default)]
    pub instance: Option<String>,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub priority: Priority,
    /// When the task is due: RFC 3339, such as `2026-12-24T18:00:00Z`.
    #[serde(default)]
    pub due_at: Option<String>,
    /// Send it to this project (`sark` or `hopper-sark`) instead of letting routing decide.
    #[serde(default)]
    pub project: Option<String>,
    /// In a project instance: run it as an orchestration (phases) rather than one assignment.
    #[serde(default)]
    pub needs_orchestration: bool,
    /// Only this executor may take it.
    #[serde(default)]
    pub executor: Option<String>,
    /// Capabilities an executor must have to take it.
    #[serde(default)]
    pub required_capabilities: Vec<String>,
    #[serde(default)]
    pub requester: Option<String>,
}

impl AddTask {
    pub fn into_draft(self) -> TaskDraft {
        TaskDraft {
            title: self.title,
            description: self.description,
            tags: self.tags,
            priority: self.priority,
            due_at: self.due_at,
            project: self.project,
            needs_orchestration: self.needs_orchestration,
            executor: self.executor,
            required_capabilities: self.required_capabilities,
            requester: self.requester,
            // Provenance is set, not declared: only inbound sources name another.
            source: Some(SourceRef {
                kind: "mcp".into(),
                ..SourceRef::default()
            }),
        }
    }
}

/// Claim the next task an executor can do (its capabilities, its project): the answer carries
/// the claim's `lease_id`. As `POST /v1/instances/{id}/next`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GetNext {
    /// The instance whose queue to take from (a project's: `hopper-sark`).
    pub instance: String,
    /// Who claims; with an executor token, that executor (the default).
    #[serde(default)]
    pub executor: Option<String>,
    /// Seconds the claim holds without a heartbeat (default `tasks.lease_seconds`).
    #[serde(default)]
    pub lease_seconds: Option<u64>,
}

/// Claim one task by id (pending, or one whose lease ran out). As `POST /v1/tasks/{id}/claim`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    pub task_id: String,
    #[serde(default)]
    pub executor: Option<String>,
    #[serde(default)]
    pub lease_seconds: Option<u64>,
}

/// Extend the lease on a claimed task (report progress). As `POST /v1/tasks/{id}/heartbeat`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub task_id: String,
    #[serde(default)]
    pub executor: Option<String>,
    /// The lease id the claim returned.
    pub lease_id: String,
    #[serde(default)]
    pub lease_seconds: Option<u64>,
}

/// Finish a task, with feedback that routing learns from. As `POST /v1/tasks/{id}/complete`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Complete {
    pub task_id: String,
    /// With `lease_id`: the executor holding the claim. Neither: the admin.
    #[serde(default)]
    pub executor: Option<String>,
    #[serde(default)]
    pub lease_id: Option<String>,
    #[serde(default)]
    pub feedback: Option<Feedback>,
}

/// Mark a task failed. As `POST /v1/tasks/{id}/fail`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Fail {
    pub task_id: String,
    #[serde(default)]
    pub executor: Option<String>,
    #[serde(default)]
    pub lease_id: Option<String>,
    pub reason: String,
}

/// Give a claimed task back to its queue. As `POST /v1/tasks/{id}/release`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub task_id: String,
    #[serde(default)]
    pub executor: Option<String>,
    #[serde(default)]
    pub lease_id: Option<String>,
}

/// An instance's tasks. As `GET /v1/instances/{id}/tasks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListTasks {
    /// Default `hopper-global`.
    #[serde(default)]
    pub instance: Option<String>,
    #[serde(default)]
    pub status: Option<TaskStatus>,
    /// Include the tasks of every descendant instance.
    #[serde(default)]
    pub hierarchy: bool,
    #[serde(default)]
    pub limit: Option<i64>,
    /// The next page: tasks after this id (the last one of the previous page).
    #[serde(default)]
    pub after: Option<String>,
}

/// One task by id (`get_task`, `explain_routing`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskRef {
    pub task_id: String,
}

/// One instance by id (`instance_stats`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceRef {
    /// Such as `hopper-global` or `hopper-sark`.
    pub instance: String,
}

/// No arguments.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// Send a pending task (or a routed one nobody claimed) to another project; the correction is
/// recorded and learnt from. As `POST /v1/tasks/{id}/route`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteTask {
    pub task_id: String,
    /// The project to send it to (`sark` or `hopper-sark`).
    pub project: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Episodes (routing decisions, corrections, outcomes) ranked by full-text match. As
/// `GET /v1/memory/search`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchMemory {
    /// Words to look for (title, description, tags, feedback notes).
    pub q: String,
    /// The instance whose episodes (the global one by default).
    #[serde(default)]
    pub instance: Option<String>,
    /// At most this many (20 by default, 100 at most).
    #[serde(default)]
    pub limit: Option<i64>,
}

/// Executors (never their secrets). As `GET /v1/executors`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListExecutors {
    /// Only those serving this project (`sark` or `hopper-sark`).
    #[serde(default)]
    pub project: Option<String>,
}

/// The claimed task, or `null` when none is waiting that the executor can do.
#[derive(Debug, Serialize, ToSchema)]
pub struct Next {
    pub task: Option<Task>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Tasks {
    pub tasks: Vec<Task>,
}

/// A task with its full event history.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskDetail {
    pub task: Task,
    pub history: Vec<TaskEvent>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Hits {
    pub hits: Vec<MemoryHit>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Executors {
    pub executors: Vec<Executor>,
}
